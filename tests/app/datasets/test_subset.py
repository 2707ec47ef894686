"""The quick-run subset every reader takes (pml_metrix.app.datasets.subset)."""

import pytest
import torch

from pml_metrix.app.datasets import get_dataset
from pml_metrix.app.datasets.subset import ClassSubset
from tests.app.test_torchrun import write_tiny_fashion_mnist


class Labelled(torch.utils.data.Dataset):
    """Items ``(index, label)`` of the given labels."""

    def __init__(self, labels):
        self.labels = torch.tensor(labels)
        self.num_classes = int(self.labels.max()) + 1

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        return index, int(self.labels[index])


def test_first_classes_and_first_images_of_each_in_split_order():
    dataset = Labelled([2, 0, 1, 0, 2, 0, 1, 3, 0])
    subset = ClassSubset(dataset, max_classes=3, max_images_per_class=2)
    assert [subset[i][0] for i in range(len(subset))] == [0, 1, 2, 3, 4, 6]
    assert subset.labels.tolist() == [2, 0, 1, 0, 2, 1] and subset.num_classes == 3
    assert ClassSubset(dataset, max_images_per_class=1).labels.tolist() == [2, 0, 1, 3]
    assert ClassSubset(dataset, max_classes=2).labels.tolist() == [0, 1, 0, 0, 1, 0]
    assert ClassSubset(dataset, max_classes=10).num_classes == 4  # no more classes than the split has
    smaller, larger = ClassSubset(dataset, 2, 1), ClassSubset(dataset, 3, 2)
    assert set(smaller.indices.tolist()) <= set(larger.indices.tolist())  # nested


@pytest.mark.parametrize("options", [{"max_classes": 0}, {"max_images_per_class": 1.5}, {"max_classes": True}])
def test_a_limit_that_is_not_a_positive_integer_is_refused(options):
    with pytest.raises(ValueError, match="must be an integer >= 1"):
        ClassSubset(Labelled([0, 1]), **options)


def test_every_reader_takes_it_through_get_dataset(tmp_path):
    root = write_tiny_fashion_mnist(tmp_path / "fashion")
    full = get_dataset("fashion_mnist", "test", root)
    subset = get_dataset("fashion_mnist", "test", root, max_classes=2, max_images_per_class=3)
    assert subset.num_classes == 2 and sorted(subset.labels.tolist()) == [0, 0, 0, 1, 1, 1]
    image, label = subset[0]
    assert torch.equal(image, full[int(subset.indices[0])][0]) and label == int(full.labels[subset.indices[0]])
