"""CUB200, Cars196 and Stanford Online Products read by PML's own readers (never downloading).

Class splits are PML's (the standard ones): CUB classes 1-100 train, 101-200 test; Cars196 1-98 /
99-196; SOP its ``Ebay_train.txt`` / ``Ebay_test.txt``. Val is a seeded ``val_fraction`` of the train
classes, which then leave train. Labels are relabelled 0..C-1 within each split.
"""

import os
from typing import Callable, Optional

from pytorch_metric_learning.datasets import CUB, Cars196, StanfordOnlineProducts
from pytorch_metric_learning.datasets.base_dataset import BaseDataset

from .image_files import ImageFiles, carve_classes, select_classes
from .roots import default_root

SPLITS = ("train", "val", "test")


# name: (PML reader, files it needs relative to root, where to get them)
BENCHMARKS: dict[str, tuple[type[BaseDataset], tuple[str, ...], str]] = {
    "cub200": (
        CUB,
        ("CUB_200_2011/images.txt", "CUB_200_2011/image_class_labels.txt", "CUB_200_2011/images"),
        f"{CUB.DOWNLOAD_URL} (extract it into root)",
    ),
    "cars196": (
        Cars196,
        ("names.csv", "anno_train.csv", "anno_test.csv", "car_data/car_data/train", "car_data/car_data/test"),
        "the Kaggle dataset jutrera/stanford-car-dataset-by-classes-folder (unzip it into root)",
    ),
    "sop": (
        StanfordOnlineProducts,
        ("Stanford_Online_Products/Ebay_train.txt", "Stanford_Online_Products/Ebay_test.txt"),
        "https://cvgl.stanford.edu/projects/lifted_struct/ (unzip Stanford_Online_Products.zip into root)",
    ),
}


def _check_cub_annotations(root: str) -> None:
    """PML's CUB reader pairs ``images.txt`` and ``image_class_labels.txt`` line by line and skips a
    pair whose image ids differ: a damaged or edited file would silently drop images (and classes)."""
    folder = os.path.join(root, "CUB_200_2011")
    ids = []
    for name in ("images.txt", "image_class_labels.txt"):
        with open(os.path.join(folder, name)) as lines:
            ids.append([line.split()[0] for line in lines if line.strip()])
    if ids[0] != ids[1]:
        line = next((i for i, (a, b) in enumerate(zip(*ids)) if a != b), min(map(len, ids)))
        raise ValueError(f"cub200: images.txt ({len(ids[0])} images) and image_class_labels.txt ({len(ids[1])}) under "
                         f"{folder} list other image ids from line {line + 1} on: a damaged or edited annotation file; "
                         f"extract {CUB.DOWNLOAD_URL} again")


def _check_files(name: str, root: str, paths: list[str], source: str) -> None:
    for path in paths:
        if not os.path.exists(path):
            raise FileNotFoundError(f"{name}: {path} not found under root {root}; get the dataset from {source}")


def load_benchmark(
    name: str,
    split: str,
    root: Optional[str] = None,
    val_fraction: float = 0.2,
    seed: int = 0,
    transform: Optional[Callable] = None,
    image_size: int = 224,
    augment: bool = True,
) -> ImageFiles:
    """Split ``split`` of benchmark ``name`` (a key of ``BENCHMARKS``) with the paper's transforms at
    ``image_size`` (train: augmented unless not ``augment``; val, test: resize and centre crop) unless
    ``transform`` is given."""
    if split not in SPLITS:
        raise ValueError(f"Unknown {name} split {split!r}; valid: {', '.join(SPLITS)}")
    reader, needed, source = BENCHMARKS[name]
    root = root or default_root(name)
    _check_files(name, root, [os.path.join(root, path) for path in needed], source)
    if name == "cub200":
        _check_cub_annotations(root)
    original = reader(root=root, split="test" if split == "test" else "train", download=False)
    if not original.paths:
        raise ValueError(f"{name}: the annotation files under {root} list no image of the {split} classes")
    classes = sorted(set(original.labels))
    if split != "test":
        train_classes, val_classes = carve_classes(classes, val_fraction, seed)
        classes = train_classes if split == "train" else val_classes
    dataset = select_classes(original.paths, original.labels, classes, transform, split == "train" and augment, image_size)
    _check_files(name, root, dataset.paths, source)  # every image of the split, before a run trains on any
    return dataset
