from pytorch_metric_learning.losses import NTXentLoss

from .. import functional as F
from .metrix_loss import MetrixLossMixin


class MetrixNTXentLoss(MetrixLossMixin, NTXentLoss):
    """PML's ``NTXentLoss`` with Metrix: same arguments and defaults, plus ``mix_weight``.

    Clean part (PML's), one term per positive pair (a, p) of the batch, against the negatives N(a)
    of its anchor, ``z = s / t``::

        l(a, p) = -log(exp(z_ap) / (exp(z_ap) + sum_{n in N(a)} exp(z_an)))

    averaged over the positive pairs (``MeanReducer``). Mixed part, one term per (anchor, mix) pair
    (a, v) with soft label y_av > 0 that the pair mask shows, over V(a): the mixes the mask shows
    to a and every mix with no part of a's class (y_au = 0, a negative)::

        m(a, v) = -y_av log(exp(z_av) / (exp(z_av) + sum_{u in V(a), u != v} (1 - y_au) exp(z_au)))

    averaged likewise: a mix is a positive to degree y (its term's weight) and a negative to degree
    1 - y (in its anchor's other denominators). Binary y gives l(a, p). i-Mix scores a mix as the
    anchor, ``lam CE(x_mix, i) + (1 - lam) CE(x_mix, j)``; here the batch items are the anchors and
    the mixes the references, so the same targets are the weights y_av: lam for the anchors of i's
    class, 1 - lam for those of j's. Unlike i-Mix's softmax, the denominator of m(a, v) weights each
    other reference u by 1 - y_au, so an anchor's other pure positives (y_au = 1) are left out, as
    PML's NT-Xent leaves them out. A SoftPairs' V(a) is its
    pair mask's alone. As in PML, no pair with y > 0 or none with y < 1 gives the zero loss. For a
    distance, ``s = -d``.
    """

    def _compute_loss(self, pos_pairs, neg_pairs, indices_tuple):
        a1, p, a2, _ = indices_tuple
        if len(a1) == 0 or len(a2) == 0:
            return self.zero_losses()
        losses = F.ntxent_pair_losses(
            pos_pairs, neg_pairs, a1, a2, temperature=self.temperature, inverted=self.distance.is_inverted
        )
        return {"loss": {"losses": losses, "indices": (a1, p), "reduction_type": "pos_pair"}}

    def mixed_soft_pairs(self, mixed_batch, labels, batch_soft_labels=None):
        return super().mixed_soft_pairs(mixed_batch, labels, batch_soft_labels).showing_negatives()

    def soft_loss(self, embeddings, soft_pairs):
        soft_pairs.check_anchors(embeddings.shape[0], "one per embedding")
        mat = self.distance(embeddings, soft_pairs.embeddings)
        losses, pairs = F.ntxent_loss(
            mat, soft_pairs.soft_labels, soft_pairs.pair_mask,
            temperature=self.temperature, inverted=self.distance.is_inverted,
        )
        if len(losses) == 0:
            return self.zero_losses()
        return {"loss": {"losses": losses, "indices": pairs, "reduction_type": "pos_pair"}}
