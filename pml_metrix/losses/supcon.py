from pytorch_metric_learning.losses import SupConLoss
from pytorch_metric_learning.utils import common_functions as c_f

from .. import functional as F
from .metrix_loss import MetrixLossMixin


class MetrixSupConLoss(MetrixLossMixin, SupConLoss):
    """PML's ``SupConLoss`` with Metrix: same arguments and defaults, plus ``mix_weight``.

    Clean part (PML's), for anchor a over its positives P(a) and the references K(a) of the
    batch (positives and negatives: every reference but a itself), ``z = s / t``::

        l(a) = -1/|P(a)| sum_{p in P(a)} (z_ap - log sum_{r in K(a)} exp(z_ar))

    averaged over the anchors with a non-zero loss (``AvgNonZeroReducer``). Mixed part, over V(a):
    the mixes that the pair mask shows to a and every mix with no part of a's class (y_av = 0, a
    negative, as every other item is in i-Mix), with soft labels y_av in [0, 1] (weighted positives)::

        m(a) = -sum_{v in V(a)} y_av (z_av - log sum_{u in V(a)} exp(z_au)) / sum_{v in V(a)} y_av

    for each anchor with a pair in the mask, reduced likewise: a cross-entropy against the softmax
    over V(a) with target y normalised, i-Mix's ``lam CE(i) + (1 - lam) CE(j)`` read from the mixes'
    side. Binary y gives l(a). An anchor with no soft mass (``y_av = 0`` for every v) has
    ``m(a) = 0``, as PML gives an anchor with no positive ``l(a) = 0``: the default reducer leaves
    it out, another (``MeanReducer``) counts it, as PML's clean loss does. A SoftPairs' V(a) is its
    pair mask's alone. As in PML, no pair with y > 0 or none with y < 1 gives the zero loss. For a
    distance, ``s = -d``.
    """

    def _compute_loss(self, mat, pos_mask, neg_mask):
        if not (pos_mask.bool().any() and neg_mask.bool().any()):
            return self.zero_losses()
        losses = self._loss(mat, pos_mask, (pos_mask + neg_mask).bool())
        return {"loss": {"losses": losses, "indices": c_f.torch_arange_from_size(mat), "reduction_type": "element"}}

    def mixed_soft_pairs(self, mixed_batch, labels, batch_soft_labels=None):
        return super().mixed_soft_pairs(mixed_batch, labels, batch_soft_labels).showing_negatives()

    def soft_loss(self, embeddings, soft_pairs):
        soft_pairs.check_anchors(embeddings.shape[0], "one per embedding")
        mat = self.distance(embeddings, soft_pairs.embeddings)
        pos_pairs, neg_pairs = F.label_masks(soft_pairs.soft_labels, soft_pairs.pair_mask)
        if not (pos_pairs.any() and neg_pairs.any()):
            return self.zero_losses()
        losses = self._loss(mat, soft_pairs.soft_labels, soft_pairs.pair_mask)
        return {"loss": self.selected_anchors(losses, soft_pairs.pair_mask, mat.shape[1])}

    def _loss(self, mat, soft_labels, pair_mask):
        return F.supcon_loss(mat, soft_labels, pair_mask, temperature=self.temperature, inverted=self.distance.is_inverted)
