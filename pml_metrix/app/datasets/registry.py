"""``get_dataset(name, split, root, **options)``: the one entry point the CLI uses."""

from typing import Any, Optional


from torch.utils.data import Dataset

from .fashion_mnist import FashionMNISTClasses
from .font_attributes import ATTRIBUTES, FontAttributes
from .fonts import FontGlyphs
from .inshop import SPLITS as INSHOP_SPLITS
from .inshop import load_inshop
from .pml_benchmarks import BENCHMARKS, load_benchmark
from .subset import ClassSubset

SPLITS = {
    "fonts": ("train", "val", "test"),
    "fashion_mnist": ("train", "val", "test"),
    **{name: ("train", "val", "test") for name in BENCHMARKS},
    "inshop": INSHOP_SPLITS,
    "font_attributes": ("train", "val", "test"),
}
DATASETS = tuple(SPLITS)


def get_dataset(
    name: str,
    split: str,
    root: Optional[str] = None,
    max_classes: Optional[int] = None,
    max_images_per_class: Optional[int] = None,
    evaluation: bool = False,
    **options: Any,
) -> Dataset:
    """Split ``split`` of dataset ``name`` (one of ``DATASETS``).

    The result has ``labels`` (N LongTensor, 0..num_classes-1), ``num_classes`` and items
    ``(image float32 C x H x W, int label)``, except font_attributes, whose labels are sets (see
    :class:`.FontAttributes`: ``labels`` N x num_classes multi-hot, ``face_labels`` N LongTensor).
    ``options`` go to the reader; all take ``image_size`` (H = W; defaults: fonts and font_attributes 32,
    fashion_mnist 28, the photo benchmarks 224). Fonts also take jitter_copies, seed, val_fraction,
    test_fraction, train_fraction, font_list, cache_dir (``root`` is ignored: fonts come from the system);
    font_attributes the same and attribute_table; the photo benchmarks val_fraction, seed, transform.

    Every dataset takes ``max_classes`` and ``max_images_per_class``: a quick run on the first
    classes of each split and the first images of each class (:class:`.subset.ClassSubset`; for
    font_attributes, classes are faces).

    ``evaluation``: the split as a model is scored on it, which for the training split is its
    evaluation form: the photo benchmarks' and In-Shop's resize and centre crop rather than their random
    crop and flip, and font_attributes' sets of every attribute whatever ``train_attributes`` (so that
    its training split is graded as val and test are); the other splits and datasets are scored as read.
    """
    if name not in SPLITS:
        raise ValueError(f"Unknown dataset {name!r}; valid: {', '.join(DATASETS)}")
    if split not in SPLITS[name]:
        raise ValueError(f"Unknown {name} split {split!r}; valid: {', '.join(SPLITS[name])}")
    if evaluation and split == "train":
        if name == "font_attributes":
            options["train_attributes"] = ATTRIBUTES
        elif name in BENCHMARKS or name == "inshop":
            options["augment"] = False
    if name == "fonts":
        dataset = FontGlyphs(split, **options)
    elif name == "font_attributes":
        dataset = FontAttributes(split, **options)
    elif name == "fashion_mnist":
        dataset = FashionMNISTClasses(split, root, **options)
    elif name == "inshop":
        dataset = load_inshop(split, root, **options)
    else:
        dataset = load_benchmark(name, split, root, **options)
    if max_classes is None and max_images_per_class is None:
        return dataset
    return ClassSubset(dataset, max_classes, max_images_per_class)
