import pytest
import torch

from pml_metrix.app.datasets import DATASETS, get_dataset

from .test_fashion_mnist import write_fashion_mnist
from .test_inshop import write_inshop


def test_names():
    assert DATASETS == ("fonts", "fashion_mnist", "cub200", "cars196", "sop", "inshop", "font_attributes")


def test_unknown_name_and_split_list_the_valid_ones():
    with pytest.raises(ValueError, match="fonts, fashion_mnist, cub200, cars196, sop, inshop, font_attributes"):
        get_dataset("mnist", "train")
    with pytest.raises(ValueError, match="train, val, query, gallery"):
        get_dataset("inshop", "test")
    with pytest.raises(ValueError, match="train, val, test"):
        get_dataset("cub200", "gallery")


def test_dispatch_with_root_and_image_size_as_the_cli_calls_it(tmp_path, small_font_list):
    write_fashion_mnist(tmp_path / "fashion")
    write_inshop(tmp_path / "inshop")
    font_list, _ = small_font_list
    datasets = [
        get_dataset("fashion_mnist", "test", str(tmp_path / "fashion"), image_size=8),
        get_dataset("inshop", "gallery", str(tmp_path / "inshop"), image_size=8),
        get_dataset("fonts", "val", None, image_size=8, font_list=font_list, cache_dir=str(tmp_path / "cache")),
    ]
    for dataset, channels in zip(datasets, (1, 3, 1)):
        image, label = dataset[len(dataset) - 1]
        assert image.dtype == torch.float32 and image.shape == (channels, 8, 8) and isinstance(label, int)
        assert dataset.labels.dtype == torch.long and len(dataset.labels) == len(dataset)
        assert int(dataset.labels.max()) == dataset.num_classes - 1
