"""Alignment and uniformity (Wang and Isola, 2020) of L2-normalised embeddings.

Both normalise the embeddings first, as Wang and Isola define them on the unit hypersphere:
alignment then lies in [0, 4] and uniformity in [-4, 0], comparable across models whatever
scale their raw outputs have.

- ``alignment = E ||f(x) - f(x+)||^2`` (alpha = 2) over ordered pairs of distinct items of one
  class: exact in O(N d), from each class's scatter about its mean,
  ``sum_{i != j in c} ||x_i - x_j||^2 = 2 n_c sum_{i in c} ||x_i - mean_c||^2``.
- ``uniformity = log E exp(-2 ||f(x) - f(y)||^2)`` (t = 2) over pairs of distinct items: exact over
  all pairs when N <= ``max_items``, else over all pairs of ``max_items`` items drawn without
  replacement with ``seed`` (the same items on every call). Pairs are summed in row blocks of
  the upper triangle, so memory is O(block x max_items), never N x N.
"""

import torch
import torch.nn.functional as F
from torch import Tensor

from ..checks import check_embeddings

BLOCK_ENTRIES = 1 << 22  # entries of one row block of the Gram matrix (16 MiB in float32)


def alignment(embeddings: Tensor, labels: Tensor) -> float:
    """Mean squared distance between normalised embeddings of distinct same-class items.

    Args:
        embeddings: N x d.
        labels: N class labels (any dtype; equal values mean one class).

    Returns:
        alignment in [0, 4]; NaN when no class holds two items.
    """
    check_embeddings(embeddings)
    if not torch.is_tensor(labels) or labels.ndim != 1 or len(labels) != len(embeddings):
        raise ValueError(
            f"labels must be a tensor of shape ({len(embeddings)},), one class label per embedding, "
            f"got {tuple(getattr(labels, 'shape', ())) or type(labels).__name__}"
        )
    unit = F.normalize(embeddings, dim=1)
    _, class_index, class_sizes = torch.unique(labels, return_inverse=True, return_counts=True)
    class_index = class_index.to(unit.device)
    class_sizes = class_sizes.to(unit.device, torch.float64)
    class_sums = torch.zeros(len(class_sizes), unit.shape[1], dtype=torch.float64, device=unit.device)
    class_sums.index_add_(0, class_index, unit.to(torch.float64))
    class_means = (class_sums / class_sizes[:, None]).to(unit.dtype)
    scatter_per_item = (unit - class_means[class_index]).square().sum(dim=1, dtype=torch.float64)
    class_scatter = torch.zeros_like(class_sizes).index_add_(0, class_index, scatter_per_item)
    num_pairs = (class_sizes * (class_sizes - 1)).sum()
    if num_pairs == 0:
        return float("nan")
    return ((2 * class_sizes * class_scatter).sum() / num_pairs).item()


def uniformity(embeddings: Tensor, max_items: int = 10_000, seed: int = 0) -> float:
    """Log of the mean Gaussian potential ``exp(-2 ||x - y||^2)`` over pairs of distinct items.

    Args:
        embeddings: N x d.
        max_items: above this N, use all pairs of ``max_items`` items drawn with ``seed``.
        seed: the draw's seed.

    Returns:
        uniformity in [-4, 0]; NaN when N < 2.
    """
    check_embeddings(embeddings)
    if type(max_items) is not int or max_items < 2:
        raise ValueError(f"max_items must be an integer >= 2 (the items whose pairs count), got {max_items!r}")
    num_items = len(embeddings)
    if num_items < 2:
        return float("nan")
    if num_items > max_items:
        chosen = torch.randperm(num_items, generator=torch.Generator().manual_seed(seed))[:max_items]
        embeddings = embeddings[chosen.to(embeddings.device)]
        num_items = max_items
    unit = F.normalize(embeddings, dim=1)
    sq_norms = unit.square().sum(dim=1)  # 1, or 0 for a zero embedding
    rows_per_block = max(1, BLOCK_ENTRIES // num_items)
    upper_sum = torch.zeros((), dtype=torch.float64, device=unit.device)
    for start in range(0, num_items, rows_per_block):
        stop = min(start + rows_per_block, num_items)
        # rows start..stop against columns start..N: ||x||^2 + ||y||^2 - 2 x.y
        sq_distances = sq_norms[start:stop, None] + sq_norms[None, start:] - 2 * unit[start:stop] @ unit[start:].T
        potential = torch.exp(-2 * sq_distances.clamp_(min=0))
        upper_sum += potential[:, stop - start :].sum(dtype=torch.float64)
        upper_sum += potential[:, : stop - start].triu(diagonal=1).sum(dtype=torch.float64)
    return torch.log(2 * upper_sum / (num_items * (num_items - 1))).item()
