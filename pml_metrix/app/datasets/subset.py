"""A smaller dataset for a quick run: the first classes of a split, the first images of each class.

Every reader takes it through :func:`~pml_metrix.app.datasets.get_dataset`'s ``max_classes`` and
``max_images_per_class`` (``--dataset-options max_classes=10 max_images_per_class=20``). It applies
to every split alike: classes are kept by label (0 .. ``max_classes`` - 1, so labels stay as they
are and In-Shop's query and gallery keep the same items), images by their order in the split. The
subset is the same at every call (no draw), and a smaller one lies inside a larger one.
"""

from numbers import Integral
from typing import Optional

import torch
from torch.utils.data import Dataset

from .labels import has_label_sets, sampling_labels


class ClassSubset(Dataset):
    """The items of ``dataset`` whose label is below ``max_classes``, at most ``max_images_per_class``
    of each class (the first in the split's order); ``None``: no limit.

    ``labels``: N LongTensor of the kept items' labels; ``num_classes``: the classes kept (In-Shop's
    query and gallery: the shared count, at most ``max_classes``); items are ``dataset``'s.

    A dataset of label sets (``labels`` N x C, with ``face_labels`` the class each item is drawn by,
    as :class:`~pml_metrix.app.datasets.FontAttributes` has) is cut by those classes; its ``labels``
    keep their C columns and ``num_classes`` stays C.
    """

    def __init__(self, dataset: Dataset, max_classes: Optional[int] = None, max_images_per_class: Optional[int] = None):
        for name, value in (("max_classes", max_classes), ("max_images_per_class", max_images_per_class)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, Integral) or value < 1):
                raise ValueError(f"{name} must be an integer >= 1 (or left out: no limit), got {value!r}")
        label_sets, labels = has_label_sets(dataset), sampling_labels(dataset)
        keep = torch.ones(len(labels), dtype=torch.bool) if max_classes is None else labels < max_classes
        if max_images_per_class is not None:  # rank of each item within its class, in the split's order
            order = torch.argsort(labels, stable=True)
            sorted_labels = labels[order]
            starts = torch.searchsorted(sorted_labels, sorted_labels)
            rank = torch.empty_like(labels)
            rank[order] = torch.arange(len(labels)) - starts
            keep &= rank < max_images_per_class
        self.dataset = dataset
        self.indices = torch.nonzero(keep).squeeze(1)
        self.labels = dataset.labels[self.indices]
        if label_sets:
            self.face_labels = labels[self.indices]
            self.num_classes = int(dataset.num_classes)
        else:
            self.num_classes = int(dataset.num_classes) if max_classes is None else min(int(dataset.num_classes), max_classes)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int):
        return self.dataset[int(self.indices[index])]
