import torch
from pytorch_metric_learning.losses import ContrastiveLoss

from .. import functional as F
from .metrix_loss import MetrixLossMixin


class MetrixContrastiveLoss(MetrixLossMixin, ContrastiveLoss):
    """PML's ``ContrastiveLoss`` with Metrix: same arguments and defaults, plus ``mix_weight``.

    Clean part (PML's), over the positive pairs (a, p) and negative pairs (a, n) of the batch::

        L = mean_{(a, p)} [d_ap - m_pos]_+  +  mean_{(a, n)} [m_neg - d_an]_+

    each mean over the non-zero terms (``AvgNonZeroReducer``). Mixed part, over the (anchor, mix)
    pairs (a, v) of the pair mask, with soft labels y_av in [0, 1]::

        M = mean_{(a, v): y_av > 0} y_av [d_av - m_pos]_+  +  mean_{(a, v): y_av < 1} (1 - y_av) [m_neg - d_av]_+

    reduced likewise. A mix of a positive and a negative is pulled in with weight lam and pushed
    out with weight 1 - lam. PML's sign convention holds for similarities (``distance.margin``).
    """

    def get_per_pair_loss(self, pair_dists, pos_or_neg):
        if pos_or_neg == "pos":
            return self._pos_terms(pair_dists)
        return self._neg_terms(pair_dists)

    def soft_loss(self, embeddings, soft_pairs):
        soft_pairs.check_anchors(embeddings.shape[0], "one per embedding")
        mat = self.distance(embeddings, soft_pairs.embeddings)
        soft_labels = soft_pairs.soft_labels.to(F.loss_dtype(mat.dtype))
        pos_pairs, neg_pairs = F.label_masks(soft_labels, soft_pairs.pair_mask)
        return {
            "pos_loss": self.pair_losses(pos_pairs, mat, soft_labels, self._pos_terms, "pos_pair"),
            "neg_loss": self.pair_losses(neg_pairs, mat, soft_labels, self._neg_terms, "neg_pair"),
        }

    def pair_losses(self, kept, mat, soft_labels, terms, reduction_type) -> dict:
        """Loss info for the pairs ``kept`` keeps (A x R bool), listed as PML lists pairs: the
        (anchors, references) tuple and ``terms(distances, soft_labels)`` of each pair."""
        anchors, references = torch.where(kept)
        if len(anchors) == 0:
            return self.zero_loss()
        flat = anchors * kept.shape[1] + references  # one gather: its backward adds, where mat[a, r]'s puts
        losses = terms(mat.flatten().index_select(0, flat), soft_labels.flatten().index_select(0, flat))
        return {"losses": losses, "indices": (anchors, references), "reduction_type": reduction_type}

    def _pos_terms(self, pair_dists, soft_labels=None):
        return F.contrastive_pos_terms(
            pair_dists, soft_labels, pos_margin=self.pos_margin, inverted=self.distance.is_inverted
        )

    def _neg_terms(self, pair_dists, soft_labels=None):
        return F.contrastive_neg_terms(
            pair_dists, soft_labels, neg_margin=self.neg_margin, inverted=self.distance.is_inverted
        )
