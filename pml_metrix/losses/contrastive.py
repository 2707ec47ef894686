from pytorch_metric_learning.losses import ContrastiveLoss

from .. import functional as F
from .metrix_loss import MetrixLossMixin


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
            "pos_loss": self.selected_pairs(pos_pairs, mat, y, self._pos_terms),
            "neg_loss": self.selected_pairs(neg_pairs, mat, y, self._neg_terms),
        }

    def _pos_terms(self, pair_dists, soft_labels=None):
        return F.contrastive_pos_terms(
            pair_dists, soft_labels, pos_margin=self.pos_margin, inverted=self.distance.is_inverted
        )

    def _neg_terms(self, pair_dists, soft_labels=None):
        return F.contrastive_neg_terms(
            pair_dists, soft_labels, neg_margin=self.neg_margin, inverted=self.distance.is_inverted
        )
