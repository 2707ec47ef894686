from pytorch_metric_learning.losses import MultiSimilarityLoss
from pytorch_metric_learning.utils import common_functions as c_f

from .. import functional as F
from .. import names
from .metrix_loss import MetrixLossMixin


class MetrixMSLoss(MetrixLossMixin, MultiSimilarityLoss):
    """PML's ``MultiSimilarityLoss`` with Metrix: same arguments and defaults, plus ``mix_weight``
    and ``mixed_form``.

    Clean part (PML's), for anchor a over its positives P(a) and negatives N(a) in the batch::

        l(a) = 1/alpha log(1 + sum_{p in P(a)} exp(-alpha (s_ap - base)))
             + 1/beta  log(1 + sum_{n in N(a)} exp( beta (s_an - base)))

    averaged over the anchors (``MeanReducer``). Mixed part, over the mixes V(a) that the pair mask
    shows to a, with soft labels y_av in [0, 1]:

    - ``mixed_form="soft_labels"`` (the paper's)::

        m(a) = 1/alpha log(1 + sum_{v in V(a)} y_av exp(-alpha (s_av - base)))
             + 1/beta  log(1 + sum_{v in V(a)} (1 - y_av) exp(beta (s_av - base)))

    - ``mixed_form="attract"``: the positive sum alone, so that every mix pulls its anchor closer,
      harder the larger its share ``y_av`` of the anchor's class::

        m(a) = 1/alpha log(1 + sum_{v in V(a)} y_av exp(-alpha (s_av - base)))

    averaged over the anchors with at least one mix. ``mixed_form`` is the mixes' alone: the clean
    part on label sets is the two-sided soft form either way. PML's sign convention holds for
    distances (``distance.margin``).
    """

    MIXED_FORMS = names.MS_MIXED_FORMS

    def __init__(self, *args, mixed_form: str = "soft_labels", **kwargs):
        super().__init__(*args, **kwargs)
        if mixed_form not in self.MIXED_FORMS:
            raise ValueError(f"mixed_form must be one of {self.MIXED_FORMS}, got {mixed_form!r}")
        self.mixed_form = mixed_form

    def _compute_loss(self, mat, pos_mask, neg_mask):
        losses = self._loss(mat, (pos_mask.bool(), neg_mask.bool()))
        return {"loss": {"losses": losses, "indices": c_f.torch_arange_from_size(mat), "reduction_type": "element"}}

    def soft_loss(self, embeddings, soft_pairs):
        return self._soft_loss(embeddings, soft_pairs, self._loss)

    def mixed_soft_loss(self, embeddings, soft_pairs):
        return self._soft_loss(embeddings, soft_pairs, self._attract_loss if self.mixed_form == "attract" else self._loss)

    def _soft_loss(self, embeddings, soft_pairs, loss):
        soft_pairs.check_anchors(embeddings.shape[0], "one per embedding")
        mat = self.distance(embeddings, soft_pairs.embeddings)
        losses = loss(mat, soft_pairs.soft_labels, soft_pairs.pair_mask)
        return {"loss": self.selected_anchors(losses.squeeze(1), soft_pairs.pair_mask, mat.shape[1])}

    def _attract_loss(self, mat, soft_labels, pair_mask):
        return F.multi_similarity_pos(
            mat, soft_labels, pair_mask, alpha=self.alpha, base=self.base, inverted=self.distance.is_inverted
        )

    def _loss(self, mat, soft_labels, pair_mask=None):
        return F.multi_similarity_loss(
            mat, soft_labels, pair_mask,
            alpha=self.alpha, beta=self.beta, base=self.base, inverted=self.distance.is_inverted,
        )
