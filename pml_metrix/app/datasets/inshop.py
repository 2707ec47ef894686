"""DeepFashion In-Shop Clothes Retrieval, read from its original layout.

``list_eval_partition.txt`` (in root or ``root/Eval``): a count line, a header line
(``image_name item_id evaluation_status``), then one line per image, status in {train, query,
gallery}. Image names (``img/...``) are relative to root, or to ``root/Img`` as in the archive.

Splits: train (the train items minus val), val (a seeded ``val_fraction`` of the train items), query
and gallery. Query and gallery share one labelling (their items, sorted), so a query's label equals
that of its gallery matches; their ``num_classes`` counts the items of both.
"""

import os
from typing import Callable, Optional

from .image_files import ImageFiles, carve_classes, paper_transform, select_classes
from .roots import default_root

SPLITS = ("train", "val", "query", "gallery")
PARTITION_FILE = "list_eval_partition.txt"
SOURCE = "https://mmlab.ie.cuhk.edu.hk/projects/DeepFashion/InShopRetrieval.html (Eval/ and Img/img.zip)"


HEADER = ["image_name", "item_id", "evaluation_status"]


def read_partition(path: str) -> list[tuple[str, int, str]]:
    """(image_name, item number, status) per image of the partition file at ``path``, checked against
    its count line and header."""
    with open(path) as file:
        lines = [line for line in file.read().splitlines() if line.strip()]
    rows = [line.split() for line in lines[2:]]
    if len(lines) < 2 or lines[0].strip() != str(len(rows)) or lines[1].split() != HEADER \
            or any(len(row) != 3 for row in rows):
        count = lines[0].strip() if lines else "nothing"
        raise ValueError(f"inshop: {path} is not a whole partition file (a count line, the header "
                         f"{' '.join(HEADER)}, one line of three fields per image): its count line says {count}, "
                         f"it lists {len(rows)} lines; get it again from {SOURCE}")
    return [(name, int(item.rsplit("_", 1)[-1]), status) for name, item, status in rows]


def _find(root: str, candidates: tuple[str, ...], what: str) -> str:
    for candidate in candidates:
        if os.path.exists(os.path.join(root, candidate)):
            return os.path.join(root, candidate)
    tried = " or ".join(candidates)
    raise FileNotFoundError(f"inshop: {what} not found as {tried} under root {root}; get it from {SOURCE}")


def load_inshop(
    split: str,
    root: Optional[str] = None,
    val_fraction: float = 0.2,
    seed: int = 0,
    transform: Optional[Callable] = None,
    image_size: int = 224,
    augment: bool = True,
) -> ImageFiles:
    """Split ``split`` of In-Shop with the paper's transforms at ``image_size`` (train: augmented unless
    not ``augment``) unless ``transform`` is given."""
    if split not in SPLITS:
        raise ValueError(f"Unknown inshop split {split!r}; valid: {', '.join(SPLITS)}")
    root = root or default_root("inshop")
    partition = read_partition(_find(root, (PARTITION_FILE, os.path.join("Eval", PARTITION_FILE)), PARTITION_FILE))
    image_root = os.path.dirname(_find(root, ("img", os.path.join("Img", "img")), "the img/ folder"))
    status = "train" if split in ("train", "val") else split
    rows = [(os.path.join(image_root, name), item) for name, item, state in partition if state == status]
    if not rows:
        raise ValueError(f"inshop: {PARTITION_FILE} under {root} lists no {status} image")
    paths, items = [path for path, _ in rows], [item for _, item in rows]
    if split in ("train", "val"):
        train_items, val_items = carve_classes(items, val_fraction, seed)
        kept = train_items if split == "train" else val_items
        dataset = select_classes(paths, items, kept, transform, split == "train" and augment, image_size)
    else:
        test_items = sorted({item for _, item, state in partition if state in ("query", "gallery")})
        dataset = ImageFiles(paths, items, transform or paper_transform(False, image_size), classes=test_items)
    missing = next((path for path in dataset.paths if not os.path.isfile(path)), None)  # every image of the split
    if missing is not None:
        raise FileNotFoundError(f"inshop: image {missing} not found; get img/ from {SOURCE}")
    return dataset
