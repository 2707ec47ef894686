import gzip
import shutil

import pytest
import torch

from pml_metrix.app.datasets import fashion_mnist
from pml_metrix.app.datasets.fashion_mnist import FashionMNISTClasses

from .conftest import write_idx_gz


def write_fashion_mnist(folder, per_class=(3, 2)):
    """Tiny gzip IDX files: ``per_class[0]`` training and ``per_class[1]`` test images of each class,
    image pixels all equal to label * 10 + position, so items can be traced back."""
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, count in zip(("train", "t10k"), per_class):
        labels = torch.arange(10, dtype=torch.uint8).repeat(count)
        images = (labels * 10 + torch.arange(len(labels), dtype=torch.uint8) % 10).view(-1, 1, 1).expand(-1, 28, 28)
        write_idx_gz(folder / f"{prefix}-images-idx3-ubyte.gz", images.to(torch.uint8))
        write_idx_gz(folder / f"{prefix}-labels-idx1-ubyte.gz", labels)


@pytest.fixture
def nowhere_else(monkeypatch, tmp_path):
    """No Debian folder and no download."""
    monkeypatch.setattr(fashion_mnist, "DEBIAN_FOLDER", str(tmp_path / "no_debian"))

    def offline(*args, **kwargs):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    monkeypatch.setattr(fashion_mnist, "FashionMNIST", offline)


def test_disjoint_class_splits_from_gzip_files_in_root(tmp_path, nowhere_else):
    write_fashion_mnist(tmp_path / "data")
    train, val, test = (FashionMNISTClasses(split, str(tmp_path / "data")) for split in ("train", "val", "test"))
    assert len(train) == 15 and len(val) == 10 and len(test) == 10
    for dataset in (train, val, test):
        assert dataset.num_classes == 5
        assert torch.equal(dataset.labels.unique(), torch.arange(5))
        image, label = dataset[0]
        assert image.shape == (1, 28, 28) and image.dtype == torch.float32
    # test holds original classes 5-9 relabelled 0-4: pixel = (original label * 10 + position) / 255
    original = (test.images[:, 0, 0, 0] // 10).long()
    assert torch.equal(original, test.labels + 5)
    assert torch.equal((train.images[:, 0, 0, 0] // 10).long(), train.labels)


def test_torchvision_folder_with_plain_files(tmp_path, nowhere_else):
    raw = tmp_path / "FashionMNIST" / "raw"
    write_fashion_mnist(raw)
    for packed in raw.glob("*.gz"):
        with gzip.open(packed) as source, open(str(packed)[:-3], "wb") as target:
            shutil.copyfileobj(source, target)
        packed.unlink()
    assert len(FashionMNISTClasses("test", str(tmp_path))) == 10


def test_debian_folder_is_used_and_unpacked_into_root(tmp_path, monkeypatch, nowhere_else):
    write_fashion_mnist(tmp_path / "debian")
    monkeypatch.setattr(fashion_mnist, "DEBIAN_FOLDER", str(tmp_path / "debian"))
    dataset = FashionMNISTClasses("val", str(tmp_path / "root"))
    assert len(dataset) == 10
    assert (tmp_path / "root" / "FashionMNIST" / "raw" / "t10k-images-idx3-ubyte").is_file()


def test_missing_files_say_where_to_put_them(tmp_path, nowhere_else):
    with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist") as error:
        FashionMNISTClasses("train", str(tmp_path))
    assert "FashionMNIST/raw" in str(error.value) and "Error downloading" in str(error.value)


def test_unknown_split():
    with pytest.raises(ValueError, match="train, val, test"):
        FashionMNISTClasses("gallery")


def test_image_size_resizes_once(tmp_path, nowhere_else):
    write_fashion_mnist(tmp_path)
    dataset = FashionMNISTClasses("train", str(tmp_path), image_size=32)
    image, _ = dataset[0]
    assert image.shape == (1, 32, 32) and dataset.images.dtype == torch.uint8
    # a constant image stays constant
    assert torch.equal(image, torch.full_like(image, image[0, 0, 0].item()))


def test_a_gzip_file_replaced_under_the_same_path_is_unpacked_again(tmp_path, nowhere_else):
    write_fashion_mnist(tmp_path)
    first = FashionMNISTClasses("train", str(tmp_path)).images.clone()
    write_fashion_mnist(tmp_path, per_class=(4, 2))  # newer files, unpacked copies of the old ones beside them
    again = FashionMNISTClasses("train", str(tmp_path))
    assert len(first) == 15 and len(again.images) == 20
