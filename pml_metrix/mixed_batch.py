"""The contract between a miner and the Metrix losses: soft-labelled references for each anchor.

Pass either object where PML passes ``indices_tuple``: ``loss(embeddings, labels, mixed_batch)``.
"""

from dataclasses import dataclass
from typing import Optional, Tuple

import torch
from torch import Tensor

from .checks import check_embeddings, check_pair_mask, check_same_device, in_unit_interval
from .functional import loss_dtype

IndicesTuple = Optional[Tuple[Tensor, ...]]


@dataclass
class SoftPairs:
    """References with a soft label relative to each anchor (teacher or multi-label similarities).

    Args:
        embeddings: R x d reference embeddings.
        soft_labels: A x R, in [0, 1]: how much reference r is a positive for anchor a. The anchors
            are the batch embeddings (A = B), or the proxies for proxy anchor (A = num_classes).
        pair_mask: A x R bool, which pairs count; ``None`` means all. Mask out each anchor's own
            row when the references are the batch itself.

    With ``SoftPairs`` the loss is the PML loss with these labels in place of the class labels;
    ``labels`` may then be ``None``.
    """

    embeddings: Tensor
    soft_labels: Tensor
    pair_mask: Optional[Tensor] = None

    def __post_init__(self):
        check_embeddings(self.embeddings, "SoftPairs.embeddings", allow_empty=True)
        y = self.soft_labels
        if not torch.is_tensor(y) or y.ndim != 2 or y.shape[1] != self.embeddings.shape[0]:
            raise ValueError(
                "soft_labels must be an A x R tensor with R = len(embeddings) = "
                f"{self.embeddings.shape[0]}, got {tuple(getattr(y, 'shape', ()))}"
            )
        if y.dtype != torch.bool and not y.is_floating_point():
            raise ValueError(f"soft_labels must be float in [0, 1] or bool, got dtype {y.dtype}")
        check_pair_mask(self.pair_mask, tuple(y.shape), "anchors x references")
        check_same_device(self.embeddings, soft_labels=y, pair_mask=self.pair_mask)
        if y.dtype != torch.bool and not in_unit_interval(y):
            raise ValueError("soft_labels must lie in [0, 1] (NaN is not allowed)")

    @classmethod
    def _of_checked(cls, embeddings: Tensor, soft_labels: Tensor, pair_mask: Optional[Tensor] = None) -> "SoftPairs":
        """SoftPairs of values already checked, as :meth:`MixedBatch.soft_pairs` makes them: soft labels
        in [0, 1] by construction, embeddings checked when the MixedBatch was made. Only the pair
        mask's shape, which the anchors fix, is checked here."""
        soft_pairs = cls.__new__(cls)
        soft_pairs.embeddings, soft_pairs.soft_labels, soft_pairs.pair_mask = embeddings, soft_labels, pair_mask
        check_pair_mask(pair_mask, tuple(soft_labels.shape), "anchors x references")
        return soft_pairs

    def check_anchors(self, num_anchors: int, what: str) -> None:
        """Raise unless there is one row of labels per anchor."""
        if self.soft_labels.shape[0] != num_anchors:
            raise ValueError(
                f"soft_labels has {self.soft_labels.shape[0]} rows but the loss has {num_anchors} "
                f"anchors ({what}): give one row per anchor"
            )


@dataclass
class MixedBatch:
    """Mixed embeddings with the plan that made them.

    Args:
        embeddings: K x d mixed embeddings, ``lam_k e_i + (1 - lam_k) e_j`` at some level.
        source_index: K x 2 long, the batch positions (i, j) mixed into item k.
        lam: K mixing factors in [0, 1].
        pair_mask: B x K bool (num_classes x K for proxy anchor), which (anchor, mixed item)
            pairs count; ``None`` means all.
        indices_tuple: an optional PML miner tuple for the clean part of the loss.

    The soft label of mixed item k for an anchor of class c is
    ``lam_k [c(i_k) = c] + (1 - lam_k) [c(j_k) = c]``.
    """

    embeddings: Tensor
    source_index: Tensor
    lam: Tensor
    pair_mask: Optional[Tensor] = None
    indices_tuple: IndicesTuple = None

    def __post_init__(self):
        check_embeddings(self.embeddings, "MixedBatch.embeddings", allow_empty=True)
        num_mixed = self.embeddings.shape[0]
        idx, lam = self.source_index, self.lam
        if not torch.is_tensor(idx) or idx.dtype != torch.long or tuple(idx.shape) != (num_mixed, 2):
            raise ValueError(
                f"source_index must be a long tensor of shape ({num_mixed}, 2), one (i, j) per mixed "
                f"embedding, got {getattr(idx, 'dtype', type(idx))} {tuple(getattr(idx, 'shape', ()))}"
            )
        if not torch.is_tensor(lam) or not lam.is_floating_point() or tuple(lam.shape) != (num_mixed,):
            raise ValueError(
                f"lam must be a float tensor of shape ({num_mixed},), one factor per mixed embedding, "
                f"got {getattr(lam, 'dtype', type(lam))} {tuple(getattr(lam, 'shape', ()))}"
            )
        if self.pair_mask is not None:
            check_pair_mask(self.pair_mask, (self.pair_mask.shape[0], num_mixed), "anchors x mixed items")
        check_same_device(self.embeddings, source_index=idx, lam=lam, pair_mask=self.pair_mask)
        if not in_unit_interval(lam):
            raise ValueError("lam must lie in [0, 1] (NaN is not allowed)")

    def soft_pairs(self, labels: Tensor, anchor_labels: Tensor) -> SoftPairs:
        """Resolve the plan against the batch, for anchors of any class labels.

        Args:
            labels: B class labels of the batch the plan indexes.
            anchor_labels: A class labels of the anchors (the batch labels, or ``arange(num_classes)``
                for proxies: :meth:`class_soft_pairs` does that faster).
        """
        check_same_device(labels, anchor_labels=anchor_labels)  # source_index: in class_soft_labels
        # number the classes present 0, ..., C - 1; each anchor takes its class's row
        if anchor_labels is labels:  # the batch's own anchors
            classes, class_index = torch.unique(labels, return_inverse=True)
            batch_index = anchor_index = class_index
        else:
            classes, class_index = torch.unique(torch.cat([anchor_labels, labels]), return_inverse=True)
            anchor_index, batch_index = class_index[: len(anchor_labels)], class_index[len(anchor_labels):]
        soft_labels = self.class_soft_labels(batch_index, len(classes)).index_select(0, anchor_index)
        return SoftPairs._of_checked(self.embeddings, soft_labels, self.pair_mask)

    def class_soft_pairs(self, labels: Tensor, num_classes: int) -> SoftPairs:
        """Resolve the plan against the batch, for one anchor per class 0, ..., num_classes - 1 (proxy
        anchor's proxies); ``labels`` (B) must lie in ``[0, num_classes)``."""
        return SoftPairs._of_checked(self.embeddings, self.class_soft_labels(labels, num_classes), self.pair_mask)

    def class_soft_labels(self, labels: Tensor, num_classes: int) -> Tensor:
        """num_classes x K: the soft label of each mixed item for each class,
        ``lam [c(i) = c] + (1 - lam) [c(j) = c]``, given the B labels (in ``[0, num_classes)``) of the
        batch the plan indexes. An anchor's soft labels are its class's row: built so, by two scatters
        of K, rather than by comparing A x K labels twice."""
        check_same_device(labels, source_index=self.source_index)
        if self.source_index.numel():
            low, high = (int(bound) for bound in torch.aminmax(self.source_index))  # one pass
            if low < 0 or high >= len(labels):
                raise ValueError(
                    f"source_index must index the batch of {len(labels)} items, got values in [{low}, {high}]"
                )
        source_labels = labels[self.source_index]  # K x 2
        lam = self.lam.to(loss_dtype(self.embeddings.dtype))
        class_labels = lam.new_zeros(num_classes, len(lam))
        mixed_index = torch.arange(len(lam), device=lam.device)
        # in [0, 1] as lam is (checked on construction)
        class_labels.index_put_((source_labels[:, 0], mixed_index), lam, accumulate=True)
        class_labels.index_put_((source_labels[:, 1], mixed_index), 1 - lam, accumulate=True)
        return class_labels
