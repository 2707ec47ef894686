import torch
from pytorch_metric_learning.losses import ProxyAnchorLoss
from pytorch_metric_learning.utils import common_functions as c_f
from pytorch_metric_learning.utils import loss_and_miner_utils as lmu

from .. import functional as F
from .metrix_loss import MetrixLossMixin


class MetrixProxyAnchorLoss(MetrixLossMixin, ProxyAnchorLoss):
    """PML's ``ProxyAnchorLoss`` with Metrix: same arguments and defaults, plus ``mix_weight``.

    The anchors are the proxies: a ``MixedBatch.pair_mask`` or ``SoftPairs.soft_labels`` has
    num_classes rows. The positive terms are summed over proxies and divided by the number of
    proxies with positive (soft) mass; the negative terms are summed and divided by num_classes.
    """

    def clean_loss(self, embeddings, labels, indices_tuple, ref_emb, ref_labels):
        c_f.labels_required(labels)
        if ref_emb is not None:
            c_f.ref_not_supported(embeddings, labels, ref_emb, ref_labels)
        self.check_label_range(labels)
        miner_weights = lmu.convert_to_weights(indices_tuple, labels, dtype=embeddings.dtype) - 1
        is_class = torch.nn.functional.one_hot(labels, self.num_classes).bool()
        loss_dict = self._loss_dict(embeddings, is_class, None, miner_weights)
        self.add_weight_regularization_to_loss_dict(loss_dict, self.proxies)
        return loss_dict

    def anchor_labels(self, labels):
        self.check_label_range(labels)
        return torch.arange(self.num_classes, device=labels.device)

    def mixed_soft_pairs(self, mixed_batch, labels):
        self.check_label_range(labels)
        return mixed_batch.class_soft_pairs(labels, self.num_classes)

    def check_label_range(self, labels):
        """Raise unless every label has its proxy: 0 <= label < num_classes."""
        if not labels.numel():
            return
        low, high = (int(bound) for bound in torch.aminmax(labels))  # one pass over the labels
        if low < 0 or high >= self.num_classes:
            raise ValueError(
                f"labels must lie in [0, num_classes - 1] = [0, {self.num_classes - 1}], got values in "
                f"[{low}, {high}]: remap the labels or raise num_classes"
            )

    def soft_loss(self, embeddings, soft_pairs):
        soft_pairs.check_anchors(self.num_classes, "one per proxy, num_classes")
        # PML's layout, references x proxies, made contiguous: the arithmetic mixes them with the
        # (contiguous) logits, and an elementwise op over two layouts runs up to 10x slower
        mask = None if soft_pairs.pair_mask is None else soft_pairs.pair_mask.T.contiguous()
        return self._loss_dict(soft_pairs.embeddings, soft_pairs.soft_labels.T.contiguous(), mask, None)

    def _loss_dict(self, ref_emb, soft_labels, pair_mask, ref_log_weights):
        """Loss dict over references ``ref_emb`` (R x d), labels and mask R x num_classes."""
        if ref_emb.shape[1] != self.proxies.shape[1]:
            raise ValueError(
                f"embeddings have dimension {ref_emb.shape[1]} but the proxies have embedding_size="
                f"{self.proxies.shape[1]}: build the loss with embedding_size={ref_emb.shape[1]}"
            )
        self.cast_types(ref_emb.dtype, ref_emb.device)
        mat = self.get_logits(ref_emb)
        pos_term, neg_term = F.proxy_anchor_terms(
            mat, soft_labels, pair_mask,
            alpha=self.alpha, margin=self.margin, inverted=self.distance.is_inverted,
            ref_log_weights=ref_log_weights,
        )
        proxies = c_f.torch_arange_from_size(self.proxies)
        # proxies with positive mass (the positive weight is y itself); counts: any() is slower
        with_pos = torch.count_nonzero(F.count_true(F.kept_terms(soft_labels, pair_mask), dim=0))
        return {
            "pos_loss": {"losses": pos_term, "indices": proxies, "reduction_type": "element",
                         "divisor": int(with_pos)},
            "neg_loss": {"losses": neg_term, "indices": proxies, "reduction_type": "element",
                         "divisor": self.num_classes},
        }
