"""Mixing plans: which batch items are mixed, with which factor, and which anchors see each mix.

A plan is level-free: the same (i, j, lam) mixes images, feature maps or embeddings. It is the one
record of a drawn mix: the miner draws it, the trainer mixes with it at its level, and the loss
receives it inside a :class:`~pml_metrix.MixedBatch`, with the mixed embeddings.
"""

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Dict, Optional

import torch
from torch import Tensor

from .functional import loss_dtype
from .names import STRATEGY_SIDES

if TYPE_CHECKING:  # mixed_batch imports this module: a MixedBatch holds a MixingPlan
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
        """Mix any batch-first floating-point tensor (B x ...): returns K x ... .

        ``batch`` must be the batch the plan was drawn on: when the pair mask's rows are its items,
        its length is checked against them (the loss checks ``source_index`` against the labels)."""
        if self.pair_mask is not None and self.num_classes is None and len(batch) != len(self.pair_mask):
            raise ValueError(
                f"the plan was drawn on a batch of {len(self.pair_mask)} items, got a batch of {len(batch)}: mix the "
                "batch the plan was drawn on"
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

    def mixed_batch(self, mixed_embeddings: Tensor, indices_tuple: "IndicesTuple" = None) -> "MixedBatch":
        """The loss input for embeddings mixed with this plan at any level: a MixedBatch holding
        the embeddings, this plan (``lam`` in the loss's dtype: float32 for half-precision mixes)
        and the inner miner's ``indices_tuple`` for the clean part."""
        from .mixed_batch import MixedBatch  # here, not at the top: mixed_batch imports this module

        lam = self.lam.to(loss_dtype(mixed_embeddings.dtype))
        return MixedBatch(mixed_embeddings, self.source_index, lam, self.pair_mask, indices_tuple, self.num_classes, self.strategy)

def pair_type_masks(
    positive: Tensor, negative: Tensor, source_index: Tensor, anchor_index: Optional[Tensor] = None
) -> Dict[str, Tensor]:
    """For each strategy, an A x K bool mask: mix k = (i, j) is of that type for anchor a, i.e. i and
    j lie on the strategy's sides of a (:data:`~pml_metrix.names.STRATEGY_SIDES`).

    Args:
        positive: A x B bool, batch item b is a positive of anchor a (class labels: of a's class,
            a itself included; label sets: ``s(L_a, L_b) >= positive_threshold``).
        negative: A x B bool, b is a negative of a (class labels: of another class; label sets:
            ``s(L_a, L_b) <= negative_threshold``, by default no shared label), never a itself.
        source_index: K x 2, the mixed items (i, j); i is the anchor-side item.
        anchor_index: A batch positions of the anchors, or ``None`` for proxies, which are no batch
            item: for a proxy an item of its class is on its ``anchor`` side as on its ``positive``
            one, so an anchor-negative mix (i of its class, j of another) is a positive-negative
            one, and shows as both.
    """
    sides = []  # for i, then j: {side: A x K, the mixes whose item lies on that side of each anchor}
    for items in source_index.unbind(1):
        if anchor_index is None:  # a proxy: an item of its class is all it can tell
            sides.append({"anchor": positive[:, items], "positive": positive[:, items], "negative": negative[:, items]})
        else:
            is_item, item_positive = anchor_index[:, None] == items[None, :], positive[:, items]
            # the anchor itself, where it is its own positive (an empty label set under shares_any is not)
            sides.append({"anchor": is_item & item_positive, "positive": item_positive & ~is_item, "negative": negative[:, items]})
    return {strategy: sides[0][first] & sides[1][second] for strategy, (first, second) in STRATEGY_SIDES.items()}
