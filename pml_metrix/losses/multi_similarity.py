from pytorch_metric_learning.losses import MultiSimilarityLoss
from pytorch_metric_learning.utils import common_functions as c_f

from .. import functional as F
from .metrix_loss import MetrixLossMixin


class MetrixMSLoss(MetrixLossMixin, MultiSimilarityLoss):
    """PML's ``MultiSimilarityLoss`` with Metrix: same arguments and defaults, plus ``mix_weight``.

    The mixed part is the multi-similarity loss of each anchor over its masked mixed items,
    averaged (by the reducer) over the anchors that have at least one.
    """

    def _compute_loss(self, mat, pos_mask, neg_mask):
        losses = self._loss(mat, (pos_mask.bool(), neg_mask.bool()))
        return {"loss": {"losses": losses, "indices": c_f.torch_arange_from_size(mat), "reduction_type": "element"}}

    def soft_loss(self, embeddings, soft_pairs):
        soft_pairs.check_anchors(embeddings.shape[0], "one per embedding")
        mat = self.distance(embeddings, soft_pairs.embeddings)
        losses = self._loss(mat, soft_pairs.soft_labels, soft_pairs.pair_mask)
        return {"loss": self.selected_anchors(losses.squeeze(1), soft_pairs.pair_mask, mat.shape[1])}

    def _loss(self, mat, soft_labels, pair_mask=None):
        return F.multi_similarity_loss(
            mat, soft_labels, pair_mask,
            alpha=self.alpha, beta=self.beta, base=self.base, inverted=self.distance.is_inverted,
        )
