import torch
from pytorch_metric_learning.losses import ProxyAnchorLoss
from pytorch_metric_learning.utils import common_functions as c_f
from pytorch_metric_learning.utils import loss_and_miner_utils as lmu

from .. import functional as F
from ..label_sets import check_label_set_values, is_label_sets
from ..mixed_batch import SoftPairs
from .metrix_loss import MetrixLossMixin


class MetrixProxyAnchorLoss(MetrixLossMixin, ProxyAnchorLoss):
    """PML's ``ProxyAnchorLoss`` with Metrix: same arguments and defaults, plus ``mix_weight``.

    The anchors are the proxies p, one per class. Clean part (PML's), over the batch's embeddings x
    with positives X+(p) (x of p's class) and negatives X-(p), and P+ the proxies with a positive::

        L = 1/|P+| sum_{p in P+} log(1 + sum_{x in X+(p)} exp(-alpha (s_px - delta)))
          + 1/C    sum_{p}       log(1 + sum_{x in X-(p)} exp( alpha (s_px + delta)))

    Mixed part, over the mixes V(p) that the pair mask shows to proxy p, with soft labels y_pv::

        M = 1/|P+| sum_{p in P+} log(1 + sum_{v in V(p)} y_pv exp(-alpha (s_pv - delta)))
          + 1/C    sum_{p}       log(1 + sum_{v in V(p)} (1 - y_pv) exp(alpha (s_pv + delta)))

    P+ now the proxies with positive soft mass (``DivisorReducer``). A MixedBatch needs one pair
    mask row per proxy: draw it with ``MixupMiner(num_classes=C)``.

    Label sets (B x C multi-hot, a column per proxy): X+(p) are the items with p's label, X-(p) the
    others, and a mix of i and j has ``y_pv = lam [p in L_i] + (1 - lam) [p in L_j]`` (a proxy's
    label set is its own label; ``label_similarity`` is not used). With one label per item it is the
    class labels' loss, bit for bit.
    """

    def check_batch_labels(self, labels, num_items):
        """Class labels with a proxy each (``0 <= label < num_classes``), or label sets with a column per proxy."""
        super().check_batch_labels(labels, num_items)
        if labels is None or labels.shape[0] == 0:
            return
        if is_label_sets(labels):
            if labels.shape[1] != self.num_classes:
                raise ValueError(
                    f"label sets over {labels.shape[1]} labels, but the loss has num_classes={self.num_classes} proxies, one "
                    "per label: give a column per proxy, or build the loss with num_classes equal to the number of labels"
                )
            check_label_set_values(labels)  # no similarity is computed here to check them
            return
        low, high = (int(bound) for bound in torch.aminmax(labels))  # one pass over the labels
        if low < 0 or high >= self.num_classes:
            raise ValueError(
                f"labels must lie in [0, num_classes - 1] = [0, {self.num_classes - 1}], got values in "
                f"[{low}, {high}]: remap the labels or raise num_classes"
            )

    def compute_loss(self, embeddings, labels, indices_tuple, ref_emb, ref_labels):
        c_f.labels_required(labels)
        c_f.ref_not_supported(embeddings, labels, ref_emb, ref_labels)
        miner_weights = lmu.convert_to_weights(indices_tuple, labels, dtype=embeddings.dtype) - 1
        # B x C: item b is a positive of proxy c (of its class; with label sets, having its label)
        is_class = labels.bool() if is_label_sets(labels) else torch.nn.functional.one_hot(labels, self.num_classes).bool()
        loss_dict = self._loss_dict(embeddings, is_class, None, miner_weights)
        self.add_weight_regularization_to_loss_dict(loss_dict, self.proxies)
        return loss_dict

    def clean_part(self, embeddings, labels, indices_tuple, ref_emb, ref_labels, batch_pairs=None):
        """PML's loss; for label sets PML's steps (:meth:`compute_loss`, the embedding regularizer,
        the reducer) past its check that labels are one-dimensional."""
        if not is_label_sets(labels):
            return super().clean_part(embeddings, labels, indices_tuple, ref_emb, ref_labels)
        if batch_pairs is None:
            self.label_set_pairs(embeddings, labels, indices_tuple)  # refuses a PML tuple
        self.reset_stats()
        labels = c_f.to_device(labels, embeddings)  # as PML's forward moves class labels
        loss_dict = self.compute_loss(embeddings, labels, None, embeddings, labels)  # no ref_emb with label sets
        self.add_embedding_regularization_to_loss_dict(loss_dict, embeddings)
        return self.reducer(loss_dict, embeddings, labels)

    def label_set_pairs(self, embeddings, label_sets, indices_tuple):
        """The proxies' relation to the batch items, C x B: item b is a positive of proxy c when it
        has label c (no item-to-item similarity: the anchors are the proxies)."""
        if indices_tuple is not None:
            super().label_set_pairs(embeddings, label_sets, indices_tuple)  # refuses it
        return SoftPairs(embeddings, label_sets.T.bool())

    def mixed_soft_pairs(self, mixed_batch, labels, batch_soft_labels=None):
        return mixed_batch.class_soft_pairs(labels, self.num_classes)

    def soft_loss(self, embeddings, soft_pairs):
        soft_pairs.check_anchors(self.num_classes, "one per proxy, num_classes")
        mask = None if soft_pairs.pair_mask is None else soft_pairs.pair_mask.T  # PML's layout: references x proxies
        return self._loss_dict(soft_pairs.embeddings, soft_pairs.soft_labels.T, mask, None)

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
        # proxies with positive mass (the positive weight is y itself)
        with_pos = torch.count_nonzero(F.kept_terms(soft_labels, pair_mask).any(dim=0))
        return {
            "pos_loss": {"losses": pos_term, "indices": proxies, "reduction_type": "element",
                         "divisor": int(with_pos)},
            "neg_loss": {"losses": neg_term, "indices": proxies, "reduction_type": "element",
                         "divisor": self.num_classes},
        }
