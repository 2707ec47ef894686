"""Mixing plans: which batch items are mixed, with which factor, and which anchors see each mix.

A plan is level-free: the same (i, j, lam) mixes images, feature maps or embeddings.
"""

from dataclasses import dataclass, replace
from typing import Dict, Optional

import torch
from torch import Tensor

from .functional import loss_dtype
from .mixed_batch import IndicesTuple, MixedBatch


@dataclass
class MixingPlan:
    """K mixes of a batch of B items.

    Args:
        source_index: K x 2 long, the items (i, j) mixed into item k.
        lam: K factors; mix k is ``lam_k x_i + (1 - lam_k) x_j``.
        pair_mask: A x K bool, which anchors see mix k: the B batch items, or the classes
            0, ..., C - 1 (proxy anchor's proxies) when ``num_classes`` is C; ``None``: all.
        num_classes: ``None`` (anchors are batch items) or C (anchors are classes).
        strategy: the one strategy of every mix when the miner drew one for the step, else ``None``.
    """

    source_index: Tensor
    lam: Tensor
    pair_mask: Optional[Tensor]
    num_classes: Optional[int] = None
    strategy: Optional[str] = None

    def __len__(self) -> int:
        return self.source_index.shape[0]

    def to(self, device: torch.device) -> "MixingPlan":
        """The plan with its tensors on ``device``."""
        pair_mask = None if self.pair_mask is None else self.pair_mask.to(device)
        return replace(self, source_index=self.source_index.to(device), lam=self.lam.to(device), pair_mask=pair_mask)

    def mix(self, batch: Tensor) -> Tensor:
        """Mix any batch-first floating-point tensor (B x ...): returns K x ... ."""
        # the batch's size, when the mask's rows are its items
        rows = self.pair_mask.shape[0] if self.pair_mask is not None and self.num_classes is None else None
        if (rows is not None and len(batch) != rows) or (len(self) and len(batch) <= int(self.source_index.max())):
            raise ValueError(
                f"the plan was drawn on a batch of {rows if rows is not None else 'more'} items, got a batch of "
                f"{len(batch)}: mix the batch the plan was drawn on"
            )
        if not batch.is_floating_point():
            raise ValueError(
                f"mixing needs a floating-point batch, got {batch.dtype}: convert it first (e.g. images.float() / 255); "
                "an integer batch would round every factor lam"
            )
        lam = self.lam.to(device=batch.device, dtype=batch.dtype)
        weights = torch.stack([lam, 1 - lam]).view(2, len(self), *([1] * (batch.ndim - 1)))
        # one index_select of all i then all j, 2 x K x ...: one gather forward and one index_add
        # backward (batch[idx] would backward through CPU's slow accumulating index_put)
        sources = batch.index_select(0, self.source_index.to(batch.device).T.flatten())
        return (weights * sources.view(2, len(self), *batch.shape[1:])).sum(0)

    def mixed_batch(self, mixed_embeddings: Tensor, indices_tuple: IndicesTuple = None) -> MixedBatch:
        """The loss input for embeddings mixed with this plan at any level."""
        lam = self.lam.to(loss_dtype(mixed_embeddings.dtype))  # float32 for half-precision mixes
        return MixedBatch(
            mixed_embeddings, self.source_index, lam, self.pair_mask, indices_tuple, self.num_classes, self.strategy
        )


def pair_type_masks(
    positive: Tensor, negative: Tensor, source_index: Tensor, anchor_index: Optional[Tensor] = None
) -> Dict[str, Tensor]:
    """For each strategy, an A x K bool mask: mix k = (i, j) is of that type for anchor a.

    Args:
        positive: A x B bool, batch item b is a positive of anchor a (class labels: of a's class,
            a itself included; label sets: ``s(L_a, L_b) >= positive_threshold``).
        negative: A x B bool, b is a negative of a (class labels: of another class; label sets:
            ``s(L_a, L_b) = 0``, no shared label).
        source_index: K x 2, the mixed items (i, j); i is the anchor-side item.
        anchor_index: A batch positions of the anchors, or ``None`` for proxies, which are no batch
            item: for a proxy an anchor-negative mix (i of its class, j of another) is a
            positive-negative one, and shows as both.
    """
    positive_i, positive_j = positive[:, source_index[:, 0]], positive[:, source_index[:, 1]]
    negative_i, negative_j = negative[:, source_index[:, 0]], negative[:, source_index[:, 1]]
    if anchor_index is None:  # a proxy: i of its class and j of another is all it can tell
        positive_negative = positive_i & negative_j
        return {
            "positive_negative": positive_negative,
            "anchor_negative": positive_negative,
            "negative_negative": negative_i & negative_j,
            "positive_positive": positive_i & positive_j,
        }
    is_i = anchor_index[:, None] == source_index[None, :, 0]
    is_j = anchor_index[:, None] == source_index[None, :, 1]
    return {
        "positive_negative": positive_i & ~is_i & negative_j,
        "anchor_negative": is_i & negative_j,
        "negative_negative": negative_i & negative_j,
        "positive_positive": positive_i & positive_j & ~is_i & ~is_j,
    }
