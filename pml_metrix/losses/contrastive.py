from pytorch_metric_learning.losses import ContrastiveLoss

from .. import functional as F
from .metrix_loss import MetrixLossMixin, selected_terms


class MetrixContrastiveLoss(MetrixLossMixin, ContrastiveLoss):
    """PML's ``ContrastiveLoss`` with Metrix: same arguments and defaults, plus ``mix_weight``.

    The mixed part has positive terms ``y [d - m_pos]_+`` over masked pairs with ``y > 0`` and
    negative terms ``(1 - y) [m_neg - d]_+`` over masked pairs with ``y < 1``, each reduced apart
    (``AvgNonZeroReducer`` by default), then added.
    """

    def get_per_pair_loss(self, pair_dists, pos_or_neg):
        inverted = self.distance.is_inverted
        if pos_or_neg == "pos":
            return F.contrastive_pos_terms(pair_dists, 1.0, pos_margin=self.pos_margin, inverted=inverted)
        return F.contrastive_neg_terms(pair_dists, 0.0, neg_margin=self.neg_margin, inverted=inverted)

    def soft_loss(self, embeddings, soft_pairs):
        soft_pairs.check_anchors(embeddings.shape[0], "one per embedding")
        mat = self.distance(embeddings, soft_pairs.embeddings)
        y = soft_pairs.soft_labels
        inverted = self.distance.is_inverted
        pos_weight, neg_weight = F.label_weights(y, soft_pairs.pair_mask)
        y = y.to(F.loss_dtype(mat.dtype))
        pos_terms = F.contrastive_pos_terms(mat, y, pos_margin=self.pos_margin, inverted=inverted)
        neg_terms = F.contrastive_neg_terms(mat, y, neg_margin=self.neg_margin, inverted=inverted)
        return {
            "pos_loss": selected_terms(pos_terms, pos_weight.bool()),
            "neg_loss": selected_terms(neg_terms, neg_weight.bool()),
        }
