"""Fashion-MNIST with disjoint classes: a quick check of retrieval on unseen classes.

train: classes 0-4 from the official training file; val: classes 0-4 from the official test file
(held-out images of the training classes: it checks fitting, not transfer, and needs no seed); test:
classes 5-9 from the official test file, relabelled 0-4.

The IDX files (plain or ``.gz``) are looked for, in order, in ``root``, ``root/FashionMNIST/raw``
(torchvision's folder) and ``/usr/share/datasets/fashion-mnist`` (Debian package
``dataset-fashion-mnist``); failing those, torchvision downloads them into ``root``.
"""

import os
import tempfile
from typing import Callable, Optional

import torch
from torch.utils.data import Dataset
from torchvision.datasets import FashionMNIST
from torchvision.datasets.mnist import read_image_file, read_label_file
from torchvision.datasets.utils import extract_archive
from torchvision.transforms.functional import resize

from .roots import default_root

SPLITS = ("train", "val", "test")
DEBIAN_FOLDER = "/usr/share/datasets/fashion-mnist"
FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
TRAIN_CLASSES = range(0, 5)
TEST_CLASSES = range(5, 10)


def _has_files(folder: str) -> bool:
    return all(any(os.path.isfile(os.path.join(folder, name + suffix)) for suffix in ("", ".gz")) for name in FILES)


def find_raw_folder(root: str) -> str:
    """The first folder holding the four IDX files; downloads into ``root`` through torchvision if none."""
    for folder in (root, os.path.join(root, "FashionMNIST", "raw"), DEBIAN_FOLDER):
        if _has_files(folder):
            return folder
    try:
        FashionMNIST(root, download=True)
    except (RuntimeError, OSError) as error:  # offline: torchvision's RuntimeError naming each mirror
        raise FileNotFoundError(
            f"Fashion-MNIST files {', '.join(FILES)} (plain or .gz) not found in {root}, "
            f"{os.path.join(root, 'FashionMNIST', 'raw')} or {DEBIAN_FOLDER}, and the download failed "
            f"({error}). Install them with apt-get install dataset-fashion-mnist, or copy them from "
            "https://github.com/zalandoresearch/fashion-mnist into one of those folders."
        ) from error
    return os.path.join(root, "FashionMNIST", "raw")


def _read(folder: str, name: str, unpacked: str, reader: Callable[[str], torch.Tensor]) -> torch.Tensor:
    path = os.path.join(folder, name)
    if not os.path.isfile(path):  # only the .gz: unpack it into torchvision's folder, again when it changed
        os.makedirs(unpacked, exist_ok=True)
        path = os.path.join(unpacked, name)
        if not os.path.isfile(path) or os.path.getmtime(path) < os.path.getmtime(os.path.join(folder, name + ".gz")):
            with tempfile.TemporaryDirectory(dir=unpacked) as scratch:
                os.replace(extract_archive(os.path.join(folder, name + ".gz"), scratch), path)
    return reader(path)


class FashionMNISTClasses(Dataset):
    """One split of Fashion-MNIST by classes; items ``(image float32 1 x S x S in [0, 1], label)``,
    S = ``image_size`` (the original 28, or resized once at load)."""

    def __init__(self, split: str = "train", root: Optional[str] = None, image_size: int = 28):
        if split not in SPLITS:
            raise ValueError(f"Unknown fashion_mnist split {split!r}; valid: {', '.join(SPLITS)}")
        root = root or default_root("fashion_mnist")
        folder = find_raw_folder(root)
        prefix = "train" if split == "train" else "t10k"
        unpacked = os.path.join(root, "FashionMNIST", "raw")
        images = _read(folder, f"{prefix}-images-idx3-ubyte", unpacked, read_image_file)
        labels = _read(folder, f"{prefix}-labels-idx1-ubyte", unpacked, read_label_file)
        classes = TEST_CLASSES if split == "test" else TRAIN_CLASSES
        keep = (labels >= classes.start) & (labels < classes.stop)
        self.images = images[keep].unsqueeze(1)
        if image_size != self.images.shape[-1]:
            self.images = resize(self.images, [image_size, image_size], antialias=True)
        self.labels = labels[keep] - classes.start
        self.num_classes = len(classes)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index].float() / 255, int(self.labels[index])
