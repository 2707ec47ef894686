from typing import Callable, Optional

import torch
from pytorch_metric_learning.losses import ContrastiveLoss
from torch import Tensor

from .. import functional as F
from .metrix_loss import PAIR_MATRIX, MetrixLossMixin, listed_pairs

PAIR_LIST_FRACTION = 1 / 5
"""A contrastive sub-loss keeping at most this fraction of its (anchor, reference) pairs lists them
before any arithmetic; one keeping more is computed over the whole matrix. Forward and backward with
``AvgNonZeroReducer`` on 2 cores, pairs kept at random, list time / matrix time: 0.54 (0.82) at 1 %,
0.87 (1.01) at 10 %, 1.07 (1.15) at 25 %, 1.21 (1.22) at 50 %, 1.29 (1.28) at 100 %, 512 x 512
(128 x 128). MixupMiner's pair masks keep about 1 / num_classes; negatives without a mask nearly all."""


class MetrixContrastiveLoss(MetrixLossMixin, ContrastiveLoss):
    """PML's ``ContrastiveLoss`` with Metrix: same arguments and defaults, plus ``mix_weight``.

    The mixed part has positive terms ``y [d - m_pos]_+`` over masked pairs with ``y > 0`` and
    negative terms ``(1 - y) [m_neg - d]_+`` over masked pairs with ``y < 1``, each reduced apart
    (``AvgNonZeroReducer`` by default), then added.
    """

    def get_per_pair_loss(self, pair_dists, pos_or_neg):
        if pos_or_neg == "pos":
            return self._pos_terms(pair_dists)
        return self._neg_terms(pair_dists)

    def soft_loss(self, embeddings, soft_pairs):
        soft_pairs.check_anchors(embeddings.shape[0], "one per embedding")
        mat = self.distance(embeddings, soft_pairs.embeddings)
        y = soft_pairs.soft_labels.to(F.loss_dtype(mat.dtype))
        pos_pairs, neg_pairs = F.label_masks(y, soft_pairs.pair_mask)
        return {
            "pos_loss": self.kept_pair_terms(pos_pairs, mat, y, self._pos_terms, soft_pairs.pair_mask),
            "neg_loss": self.kept_pair_terms(neg_pairs, mat, y, self._neg_terms, soft_pairs.pair_mask),
        }

    def kept_pair_terms(
        self, kept: Tensor, mat: Tensor, soft_labels: Tensor, terms: Callable, pair_mask: Optional[Tensor]
    ) -> dict:
        """Loss info for the kept pairs (``kept``: A x R bool), reduced pair by pair as PML's pair-based
        losses are: ``terms(pair_mat, pair_labels)`` of their entries of ``mat`` and ``soft_labels``.

        At most :data:`PAIR_LIST_FRACTION` of the pairs kept: the list of their terms, each indexed by
        its anchor. More: the A x R matrix of terms (``terms`` gives 0 where the labels leave a pair
        out; the pair mask zeroes the others) as a :data:`~pml_metrix.losses.metrix_loss.PAIR_MATRIX`,
        which reaches a reducer that leaves out zero losses as it is, any other as its list.
        """
        if int(torch.count_nonzero(kept)) > PAIR_LIST_FRACTION * kept.numel():
            pair_terms = terms(mat, soft_labels)
            if pair_mask is not None:
                pair_terms = pair_terms * pair_mask
            return {"losses": pair_terms, "indices": kept, "reduction_type": PAIR_MATRIX}
        return listed_pairs(
            kept, lambda pairs: terms(mat.flatten().index_select(0, pairs), soft_labels.flatten().index_select(0, pairs))
        )

    def _pos_terms(self, pair_dists, soft_labels=None):
        return F.contrastive_pos_terms(
            pair_dists, soft_labels, pos_margin=self.pos_margin, inverted=self.distance.is_inverted
        )

    def _neg_terms(self, pair_dists, soft_labels=None):
        return F.contrastive_neg_terms(
            pair_dists, soft_labels, neg_margin=self.neg_margin, inverted=self.distance.is_inverted
        )
