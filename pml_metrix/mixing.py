"""Mixing plans: which batch items are mixed, with which factor, and which anchors see each mix.

A plan is level-free: the same (i, j, lam) mixes images, feature maps or embeddings.
"""

from dataclasses import dataclass
from typing import Dict, Optional

import torch
from torch import Tensor

from .functional import loss_dtype
from .mixed_batch import IndicesTuple, MixedBatch

STRATEGIES = ("positive_negative", "anchor_negative", "negative_negative", "positive_positive")


@dataclass
class MixingPlan:
    """K mixes of a batch of B items.

    Args:
        source_index: K x 2 long, the items (i, j) mixed into item k.
        lam: K factors; mix k is ``lam_k x_i + (1 - lam_k) x_j``.
        pair_mask: A x K bool, which anchors (batch items, or proxies) see mix k.
    """

    source_index: Tensor
    lam: Tensor
    pair_mask: Tensor

    def __len__(self) -> int:
        return self.source_index.shape[0]

    def mix(self, batch: Tensor) -> Tensor:
        """Mix any batch-first tensor (B x ...): returns K x ... ."""
        lam = self.lam.to(device=batch.device, dtype=batch.dtype)
        weights = torch.stack([lam, 1 - lam]).view(2, len(self), *([1] * (batch.ndim - 1)))
        # one index_select of all i then all j, 2 x K x ...: one gather forward and one index_add
        # backward (batch[idx] would backward through CPU's slow accumulating index_put)
        sources = batch.index_select(0, self.source_index.to(batch.device).T.flatten())
        return (weights * sources.view(2, len(self), *batch.shape[1:])).sum(0)

    def mixed_batch(self, mixed_embeddings: Tensor, indices_tuple: IndicesTuple = None) -> MixedBatch:
        """The loss input for embeddings mixed with this plan at any level."""
        lam = self.lam.to(loss_dtype(mixed_embeddings.dtype))  # float32 for half-precision mixes
        return MixedBatch(mixed_embeddings, self.source_index, lam, self.pair_mask, indices_tuple)


def pair_type_masks(
    anchor_labels: Tensor, labels: Tensor, source_index: Tensor, anchor_index: Optional[Tensor] = None
) -> Dict[str, Tensor]:
    """For each strategy, an A x K bool mask: mix k = (i, j) is of that type for anchor a.

    Args:
        anchor_labels: A class labels of the anchors.
        labels: B class labels of the batch.
        source_index: K x 2, the mixed items (i, j); i is the anchor-side item.
        anchor_index: A batch positions of the anchors, or ``None`` for proxies, which are no batch
            item: for them an anchor-negative mix is a positive-negative one.
    """
    same_i = anchor_labels[:, None] == labels[source_index[:, 0]][None, :]
    same_j = anchor_labels[:, None] == labels[source_index[:, 1]][None, :]
    if anchor_index is None:
        is_i = is_j = torch.zeros_like(same_i)
    else:
        is_i = anchor_index[:, None] == source_index[None, :, 0]
        is_j = anchor_index[:, None] == source_index[None, :, 1]
    return {
        "positive_negative": same_i & ~is_i & ~same_j,
        "anchor_negative": is_i & ~same_j,
        "negative_negative": ~same_i & ~same_j,
        "positive_positive": same_i & same_j & ~is_i & ~is_j,
    }
