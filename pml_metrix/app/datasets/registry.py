"""``get_dataset(name, split, root, **options)``: the one entry point the CLI uses."""

from typing import Any, Optional

from torch.utils.data import Dataset

from .fashion_mnist import FashionMNISTClasses
from .font_attributes import FontAttributes
from .fonts import FontGlyphs
from .inshop import SPLITS as INSHOP_SPLITS
from .inshop import load_inshop
from .pml_benchmarks import BENCHMARKS, load_benchmark

SPLITS = {
    "fonts": ("train", "val", "test"),
    "fashion_mnist": ("train", "val", "test"),
    **{name: ("train", "val", "test") for name in BENCHMARKS},
    "inshop": INSHOP_SPLITS,
    "font_attributes": ("train", "val", "test"),
}
DATASETS = tuple(SPLITS)


def get_dataset(name: str, split: str, root: Optional[str] = None, **options: Any) -> Dataset:
    """Split ``split`` of dataset ``name`` (one of ``DATASETS``).

    The result has ``labels`` (N LongTensor, 0..num_classes-1), ``num_classes`` and items
    ``(image float32 C x H x W, int label)``, except font_attributes, whose labels are sets (see
    :class:`.FontAttributes`: ``labels`` N x num_classes multi-hot, ``face_labels`` N LongTensor).
    ``options`` go to the reader; all take ``image_size`` (H = W; defaults: fonts and font_attributes 32,
    fashion_mnist 28, the photo benchmarks 224). Fonts also take jitter_copies, seed, val_fraction,
    test_fraction, train_fraction, font_list, cache_dir (``root`` is ignored: fonts come from the system);
    font_attributes the same and attribute_table; the photo benchmarks val_fraction, seed, transform.
    """
    if name not in SPLITS:
        raise ValueError(f"Unknown dataset {name!r}; valid: {', '.join(DATASETS)}")
    if split not in SPLITS[name]:
        raise ValueError(f"Unknown {name} split {split!r}; valid: {', '.join(SPLITS[name])}")
    if name == "fonts":
        return FontGlyphs(split, **options)
    if name == "font_attributes":
        return FontAttributes(split, **options)
    if name == "fashion_mnist":
        return FashionMNISTClasses(split, root, **options)
    if name == "inshop":
        return load_inshop(split, root, **options)
    return load_benchmark(name, split, root, **options)
