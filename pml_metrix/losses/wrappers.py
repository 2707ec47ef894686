"""PML's loss wrappers, ``CrossBatchMemory`` and ``SelfSupervisedLoss``, accepting the Metrix losses.

PML's wrappers accept a loss by its class name (``supported_losses()``), so they refuse the
Metrix losses. These subclasses override that hook (their list is PML's plus each Metrix loss whose
PML twin is on it) and take a MixedBatch: the memory through its ``create_indices_tuple``, the views'
wrapper through ``forward``.
"""

import copy
from typing import List, Optional, Tuple

import torch
from pytorch_metric_learning import losses
from torch import Tensor

from ..label_sets import is_label_sets
from ..mixed_batch import MixedBatch, SoftPairs
from .contrastive import MetrixContrastiveLoss
from .multi_similarity import MetrixMSLoss
from .ntxent import MetrixNTXentLoss
from .proxy_anchor import MetrixProxyAnchorLoss
from .supcon import MetrixSupConLoss

METRIX_LOSSES = (MetrixContrastiveLoss, MetrixMSLoss, MetrixNTXentLoss, MetrixProxyAnchorLoss, MetrixSupConLoss)


def pml_twin(metrix_loss: type) -> type:
    """The PML loss class a Metrix loss class subclasses (``SupConLoss`` for ``MetrixSupConLoss``)."""
    return next(cls for cls in metrix_loss.__mro__ if cls.__module__.startswith("pytorch_metric_learning.losses"))


def with_metrix_twins(supported: List[str]) -> List[str]:
    """A wrapper's list of supported loss names, plus the name of each Metrix loss whose twin is on it."""
    return supported + [cls.__name__ for cls in METRIX_LOSSES if pml_twin(cls).__name__ in supported]


def references_in_memory(batch_tuple: tuple, memory_index: Tensor) -> tuple:
    """A tuple mined on the batch alone (pairs ``(a1, p, a2, n)`` or triplets ``(a, p, n)``), its
    references moved to where the batch sits in the memory: reference r becomes ``memory_index[r]``,
    the anchors stay (they index the batch)."""
    if len(batch_tuple) == 4:
        pos_anchors, positives, neg_anchors, negatives = batch_tuple
        return pos_anchors, memory_index[positives], neg_anchors, memory_index[negatives]
    anchors, positives, negatives = batch_tuple
    return anchors, memory_index[positives], memory_index[negatives]


class CrossBatchMemory(losses.CrossBatchMemory):
    """PML's ``CrossBatchMemory``, also around the Metrix losses whose twin it supports (contrastive,
    multi-similarity, SupCon, NT-Xent; not proxy anchor). Same arguments and behaviour.

    ``indices_tuple`` a PML tuple or ``None``: PML's memory around the Metrix loss, i.e. the twin's
    loss against batch plus memory, bit for bit (PML reads a tuple's references as positions in the
    memory). ``indices_tuple`` a :class:`~pml_metrix.MixedBatch` drawn on the batch
    (``MixupMiner()(embeddings, labels)``): the loss's ``clean + mix_weight * mixed``, the clean part
    against batch plus memory (the memory's own tuple, joined with ``MixedBatch.indices_tuple``, an
    inner miner's pairs or triplets of the batch, as PML joins an ``indices_tuple``, their
    references moved to where the batch sits in the memory; a tuple whose ``tuple_references`` is
    ``"ref_emb"`` is read as PML reads one, as positions in the memory), the mixed part the batch anchors against
    the batch's mixes. The memory stores the batch embeddings, never the mixes. A MixedBatch with
    ``enqueue_mask`` is refused, as PML refuses an ``indices_tuple`` with it. Label sets are refused:
    the memory keeps one class label per item.
    """

    @staticmethod
    def supported_losses():
        return with_metrix_twins(losses.CrossBatchMemory.supported_losses())

    def forward(self, embeddings, labels, indices_tuple=None, enqueue_mask=None):
        if is_label_sets(labels):
            raise ValueError(
                f"CrossBatchMemory keeps one class label per item in its memory, but got label sets of shape "
                f"{tuple(labels.shape)}: call the Metrix loss on the batch alone, loss(embeddings, label_sets)"
            )
        if isinstance(indices_tuple, SoftPairs):
            raise ValueError(
                "CrossBatchMemory pairs the batch with its memory by their class labels, but got a SoftPairs, which "
                "brings its own references and labels: call the Metrix loss with it directly, loss(embeddings, None, "
                "soft_pairs), or give the memory a PML tuple or a MixedBatch"
            )
        return super().forward(embeddings, labels, indices_tuple, enqueue_mask)

    def create_indices_tuple(self, embeddings, labels, E_mem, L_mem, input_indices_tuple, do_remove_self_comparisons):
        if not isinstance(input_indices_tuple, MixedBatch):
            return super().create_indices_tuple(
                embeddings, labels, E_mem, L_mem, input_indices_tuple, do_remove_self_comparisons
            )
        batch_tuple = input_indices_tuple.indices_tuple
        if batch_tuple is not None and input_indices_tuple.tuple_references == "batch":
            batch_tuple = references_in_memory(batch_tuple, self.curr_batch_idx)
        memory_tuple = super().create_indices_tuple(
            embeddings, labels, E_mem, L_mem, batch_tuple, do_remove_self_comparisons
        )
        mixed_batch = copy.copy(input_indices_tuple)  # the same mixes and plan, the memory's tuple
        mixed_batch.indices_tuple, mixed_batch.tuple_references = memory_tuple, "ref_emb"
        return mixed_batch


class SelfSupervisedLoss(losses.SelfSupervisedLoss):
    """PML's ``SelfSupervisedLoss``, also around the Metrix losses whose twin it supports (all but
    proxy anchor). Same arguments and behaviour, plus mixes.

    ``loss(embeddings, ref_emb)``: PML's wrapper (B x d views of B items, item i's two views its
    only positives), so a Metrix loss inside it is its PML twin, bit for bit.
    ``loss(embeddings, ref_emb, mixed_batch)``, with ``symmetric=True`` (the default): the loss's
    ``clean + mix_weight * mixed`` over the two views as one batch of 2B items labelled by item
    (:meth:`joined_views`), its clean part this wrapper's loss without mixes. Draw the MixedBatch on
    that batch: ``both, labels = SelfSupervisedLoss.joined_views(embeddings, ref_emb)``, then
    ``MixupMiner()(both, labels)``; one drawn on another batch is refused by its pair mask's rows (a
    MixedBatch without a pair mask indexes the joined views as it stands). With ``symmetric=False``
    the anchors are one view alone, whose items have no positive among themselves to mix with: a
    MixedBatch is refused, as is a PML tuple always, and a MixedBatch carrying one (its miner's
    ``inner_miner``).
    """

    @staticmethod
    def supported_losses():
        return with_metrix_twins(losses.SelfSupervisedLoss.supported_losses())

    @staticmethod
    def joined_views(embeddings: Tensor, ref_emb: Tensor) -> Tuple[Tensor, Tensor]:
        """The two views as one batch, 2B x d, and its labels ``0, ..., B - 1`` twice (2B), as the
        symmetric wrapper joins them: item i's views share label i."""
        labels = torch.arange(embeddings.shape[0])  # PML's forward joins them so too, inline
        return torch.cat([embeddings, ref_emb], dim=0), torch.cat([labels, labels], dim=0)

    def forward(self, embeddings, ref_emb, mixed_batch: Optional[MixedBatch] = None):
        """PML's wrapper's loss, or ``clean + mix_weight * mixed`` with a MixedBatch drawn on :meth:`joined_views`."""
        if mixed_batch is None:
            return super().forward(embeddings, ref_emb)
        if not isinstance(mixed_batch, MixedBatch):
            raise ValueError(
                "SelfSupervisedLoss labels the pairs itself (an item's two views are its positives), so it takes no "
                f"indices tuple, got {type(mixed_batch).__name__}: pass a MixedBatch drawn on "
                "SelfSupervisedLoss.joined_views(embeddings, ref_emb), or nothing"
            )
        if not self.symmetric:
            raise ValueError(
                "SelfSupervisedLoss(symmetric=False) takes no MixedBatch: its anchors are one view alone, with no "
                "positive among them to mix with; use symmetric=True, whose batch is both views joined (joined_views)"
            )
        if mixed_batch.indices_tuple is not None:
            raise ValueError(
                "SelfSupervisedLoss labels the pairs itself, so the clean part takes no mined tuple, but the MixedBatch "
                "carries one (its MixupMiner's inner_miner): build the MixupMiner without inner_miner"
            )
        both, labels = self.joined_views(embeddings, ref_emb)
        if mixed_batch.pair_mask is not None and mixed_batch.num_classes is None and len(mixed_batch.pair_mask) != len(both):
            raise ValueError(
                f"the MixedBatch's pair_mask has {len(mixed_batch.pair_mask)} rows, one per anchor of the batch it was "
                f"drawn on, but the joined views have {len(both)}: draw it on "
                "SelfSupervisedLoss.joined_views(embeddings, ref_emb), both views and their item labels"
            )
        return self.loss(both, labels, mixed_batch)
