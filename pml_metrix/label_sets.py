"""Multi-label data: each item has a set of labels, held as a multi-hot row, and a pair of items a
named similarity of their two sets, which the Metrix losses take as the pair's soft label.

A batch of N label sets over C labels is an N x C tensor of 0 and 1 (``label_sets[n, c] = 1``: item
n has label c), of any integer, bool or float dtype. With one label per item (one-hot rows) every
similarity here is 1 for two items of the same class and 0 otherwise: the class labels' binary pair
labels.

Each similarity takes ``... x A x C`` and ``... x R x C`` label sets and returns the ``... x A x R``
similarities ``s(L_a, L_r)`` of every pair, from the pair's shared labels ``|L_a & L_r|`` (one matrix
product) and the set sizes. Float results are in the promoted floating dtype of the inputs (float32
for integer or bool sets), under ``torch.autocast`` too: pass the sets in float64 for float64
similarities.

- ``jaccard``: ``|L_a & L_r| / |L_a | L_r|``;
- ``dice``: ``2 |L_a & L_r| / (|L_a| + |L_r|)``;
- ``cosine`` (Ochiai): ``|L_a & L_r| / sqrt(|L_a| |L_r|)``;
- ``shares_any``: ``[|L_a & L_r| > 0]`` as a bool tensor: the hard pair labels that PML users build
  by hand (a pair is positive when its items share a label), which the losses take as binary labels.

The three ratios are 0/0 at an empty set (for Jaccard, at two empty sets), so they refuse label
sets with an empty row; ``shares_any`` takes them (an item with no label shares none).
"""

from contextlib import nullcontext
from typing import Callable, Dict, Tuple

import torch
from torch import Tensor

from .checks import check_labels, has_data

__all__ = [
    "LABEL_SIMILARITIES",
    "batch_similarities",
    "check_label_sets",
    "cosine",
    "dice",
    "get_label_similarity",
    "graded_relevance",
    "is_label_sets",
    "jaccard",
    "share_a_label",
    "shares_any",
]


def jaccard(label_sets: Tensor, ref_label_sets: Tensor) -> Tensor:
    """Jaccard similarity ``|L_a & L_r| / |L_a | L_r|`` of every pair, ``... x A x R`` float."""
    shared, sizes, ref_sizes = shared_counts(label_sets, ref_label_sets, "jaccard")
    return shared.div_((sizes + ref_sizes).sub_(shared))  # in place: one B x B tensor less to allocate


def dice(label_sets: Tensor, ref_label_sets: Tensor) -> Tensor:
    """Dice (Sorensen) similarity ``2 |L_a & L_r| / (|L_a| + |L_r|)`` of every pair, ``... x A x R`` float."""
    shared, sizes, ref_sizes = shared_counts(label_sets, ref_label_sets, "dice")
    return shared.mul_(2).div_(sizes + ref_sizes)


def cosine(label_sets: Tensor, ref_label_sets: Tensor) -> Tensor:
    """Cosine (Ochiai) similarity ``|L_a & L_r| / sqrt(|L_a| |L_r|)`` of every pair, ``... x A x R`` float."""
    shared, sizes, ref_sizes = shared_counts(label_sets, ref_label_sets, "cosine")
    return shared.div_((sizes * ref_sizes).sqrt_())


def shares_any(label_sets: Tensor, ref_label_sets: Tensor) -> Tensor:
    """``[|L_a & L_r| > 0]`` of every pair, ``... x A x R`` bool: the hard "shares a label" relation."""
    shared, _, _ = shared_counts(label_sets, ref_label_sets, "shares_any")
    return shared > 0


LabelSimilarity = Callable[[Tensor, Tensor], Tensor]
LABEL_SIMILARITIES: Dict[str, LabelSimilarity] = {
    "jaccard": jaccard,
    "dice": dice,
    "cosine": cosine,
    "shares_any": shares_any,
}


def get_label_similarity(name: str) -> LabelSimilarity:
    """The similarity of :data:`LABEL_SIMILARITIES` named ``name``; ValueError for another name."""
    if name not in LABEL_SIMILARITIES:
        raise ValueError(f"label_similarity must be one of {tuple(LABEL_SIMILARITIES)}, got {name!r}")
    return LABEL_SIMILARITIES[name]


def batch_similarities(
    label_sets: Tensor, label_similarity: str, dtype: torch.dtype, device: torch.device
) -> Tensor:
    """B x B: the similarity named ``label_similarity`` of every pair of a batch's B x C label sets,
    on ``device``, in ``dtype`` (bool for ``shares_any``). The values are checked as given: the
    similarity is computed in the wider of ``dtype`` and the sets' own dtype, then cast, so that no
    cast rounds a bad value (``1 + 1e-12`` in float64, a complex one) into 0 or 1 first.

    With one label per item every similarity is the same-class relation, 1 or 0: it is returned as
    ``shares_any`` gives it, bool, the binary labels on which the losses run PML's arithmetic (PML's
    loss with the class labels, bit for bit)."""
    similarity = get_label_similarity(label_similarity)  # the name checked whatever the batch
    sets = label_sets.to(device=device, dtype=torch.promote_types(label_sets.dtype, dtype))
    dense = sets.layout == torch.strided and has_data(sets) and sets.numel()  # else the similarity refuses or cannot tell
    if dense and bool(sets.sum(dim=-1).eq_(1).all()):  # the values are checked by the similarity
        similarity = shares_any
    similarities = similarity(sets, sets)
    return similarities.to(dtype) if similarities.is_floating_point() else similarities


def graded_relevance(label_sets: Tensor, ref_label_sets: Tensor, label_similarity: str) -> Tensor:
    """The gain of every pair for a graded retrieval metric, ``... x A x R`` float64: ``s(L_a, L_r)``,
    the similarity named ``label_similarity``, and 0 for a pair with an empty set, which shares no
    label (where the ratios are 0/0). Empty sets take a placeholder row of 1s, whose gains are then
    set to 0."""
    empty, ref_empty = (~sets.bool().any(dim=-1, keepdim=True) for sets in (label_sets, ref_label_sets))
    similarity = get_label_similarity(label_similarity)(label_sets.masked_fill(empty, 1), ref_label_sets.masked_fill(ref_empty, 1))
    return similarity.double().masked_fill_(empty | ref_empty.transpose(-1, -2), 0)


def share_a_label(label_sets: Tensor, ref_label_sets: Tensor) -> Tensor:
    """Whether two label sets share a label, elementwise over matching rows: ``... x C`` and
    ``... x C`` (broadcast) -> ``...`` bool.

    The form of PML's ``AccuracyCalculator(label_comparison_fn=...)``, which compares query and
    neighbour labels row by row: ``relevant = shares a label``.
    """
    return (label_sets * ref_label_sets).sum(dim=-1) > 0


def shared_counts(label_sets: Tensor, ref_label_sets: Tensor, name: str) -> Tuple[Tensor, Tensor, Tensor]:
    """``|L_a & L_r|`` (``... x A x R``), ``|L_a|`` (``... x A x 1``) and ``|L_r|`` (``... x 1 x R``),
    in the promoted floating dtype of the inputs, after checking that both hold label sets over the
    same labels and, but for ``shares_any``, no empty set (once when both are one tensor)."""
    dtype = torch.promote_types(torch.promote_types(label_sets.dtype, ref_label_sets.dtype), torch.float32)
    counts = []
    for what, sets in (("labels", label_sets), ("ref_labels", ref_label_sets)):
        if counts and sets is label_sets:
            counts.append(counts[0])
            break
        check_label_set_values(sets, what)
        sets = sets.to(dtype)
        sizes = sets.sum(dim=-1)
        if name != "shares_any" and has_data(sizes) and sizes.numel() and float(sizes.min()) == 0:
            raise ValueError(
                f"{what} has an empty label set (a row of zeros), where {name} is 0/0: give every item at least "
                "one label, or use label_similarity='shares_any'"
            )
        counts.append((sets, sizes))
    (sets, sizes), (ref_sets, ref_sizes) = counts
    if sets.shape[-1] != ref_sets.shape[-1]:
        raise ValueError(
            f"label sets over {sets.shape[-1]} and {ref_sets.shape[-1]} labels cannot be compared: give both "
            "one column per label of one label set"
        )
    device_type = sets.device.type
    # under torch.autocast the product would run in half precision, which rounds the counts and the ratios
    with torch.autocast(device_type, enabled=False) if torch.amp.is_autocast_available(device_type) else nullcontext():
        shared = sets @ ref_sets.transpose(-1, -2)
    return shared, sizes.unsqueeze(-1), ref_sizes.unsqueeze(-2)


def check_label_set_values(label_sets: Tensor, name: str = "labels") -> None:
    """A tensor of at least 2 dimensions (items x labels) holding only 0 and 1."""
    if not torch.is_tensor(label_sets) or label_sets.ndim < 2 or label_sets.is_complex():
        raise ValueError(
            f"{name} must be label sets, an N x C tensor of 0 and 1 (one row per item, one column per label), "
            f"got {type(label_sets).__name__} of shape {tuple(getattr(label_sets, 'shape', ()))}"
        )
    if label_sets.layout != torch.strided:
        raise ValueError(f"{name} must be a dense tensor, got layout {label_sets.layout}: pass {name}.to_dense()")
    # x (x - 1) = 0 only for 0 and 1: NaN and +-inf fail (inf * inf is inf), and integers wrapping too
    # (x (x - 1) = 0 mod 2^bits needs x or x - 1 to be 0 mod 2^bits, as the two are coprime)
    if label_sets.dtype != torch.bool and has_data(label_sets) and bool(label_sets.mul(label_sets - 1).ne_(0).any()):
        raise ValueError(
            f"{name} of shape {tuple(label_sets.shape)} are read as multi-hot label sets, which hold only 0 and 1, "
            "but these hold other values: give class labels of shape (N,), or label sets with 1 where an item "
            "has a label and 0 elsewhere"
        )


def is_label_sets(labels) -> bool:
    """Whether ``labels`` are label sets (a 2-dimensional tensor, N x C) rather than class labels (N)."""
    return torch.is_tensor(labels) and labels.ndim == 2


def check_label_sets(label_sets: Tensor, num_items: int, name: str = "labels") -> None:
    """N x C label sets of 0 and 1, one row per item."""
    check_label_set_values(label_sets, name)
    check_label_set_rows(label_sets, num_items, name)


def check_label_set_rows(label_sets: Tensor, num_items: int, name: str = "labels") -> None:
    """An N x C tensor, one row per item (its values are checked apart: :func:`check_label_set_values`).
    One column with a 0 in it is refused (:func:`is_a_column_of_class_labels`; with ``shares_any`` its
    class-0 items would be negatives of every item)."""
    if not is_label_sets(label_sets) or label_sets.shape[0] != num_items:
        raise ValueError(
            f"{name} must have shape ({num_items}, C), one label set per embedding, got shape {tuple(getattr(label_sets, 'shape', ()))}"
        )
    if is_a_column_of_class_labels(label_sets):
        raise ValueError(
            f"{name} of shape {tuple(label_sets.shape)} are read as label sets over one label, some items without it: "
            f"for class labels pass shape ({num_items},) ({name}.flatten()); for label sets give a column per label"
        )


def is_a_column_of_class_labels(label_sets: Tensor) -> bool:
    """Whether N x C label sets are one column with a 0 in it: most often N class labels as a column
    (PML's tester makes N x 1 of them), which as label sets would leave each item of class 0 with no
    label; one column of 1s, one label per item, is one class either way."""
    return label_sets.shape[1] == 1 and label_sets.layout == torch.strided and has_data(label_sets) and not bool(label_sets.all())


def check_labels_or_label_sets(labels, num_items: int, name: str = "labels") -> None:
    """Class labels (N integers) or label sets (N x C), one per item; ``None`` passes. The values of
    label sets (0 and 1) are checked where they are used, by the set similarity that every use of them
    computes (:func:`shared_counts`), so that a step checks them once."""
    if is_label_sets(labels):
        check_label_set_rows(labels, num_items, name)
    else:
        check_labels(labels, num_items, name)
