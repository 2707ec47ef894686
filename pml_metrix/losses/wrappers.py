"""PML's loss wrappers, ``CrossBatchMemory`` and ``SelfSupervisedLoss``, accepting the Metrix losses.

PML's wrappers accept a loss by its class name (``supported_losses()``), so they refuse the
Metrix losses. These subclasses override that hook alone (and, for a MixedBatch, the memory's
``create_indices_tuple``): their list is PML's plus each Metrix loss whose PML twin is on it.
"""

import copy
from typing import List

from pytorch_metric_learning import losses

from ..mixed_batch import MixedBatch
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


class CrossBatchMemory(losses.CrossBatchMemory):
    """PML's ``CrossBatchMemory``, also around the Metrix losses whose twin it supports (contrastive,
    multi-similarity, SupCon, NT-Xent; not proxy anchor). Same arguments and behaviour.

    ``indices_tuple`` a PML tuple or ``None``: PML's memory around the Metrix loss, i.e. the twin's
    loss against batch plus memory, bit for bit. ``indices_tuple`` a :class:`~pml_metrix.MixedBatch`
    drawn on the batch (``MixupMiner()(embeddings, labels)``): the loss's ``clean + mix_weight *
    mixed``, the clean part against batch plus memory (the memory's own tuple, joined with
    ``MixedBatch.indices_tuple`` as PML joins an ``indices_tuple``), the mixed part the batch anchors
    against the batch's mixes. The memory stores the batch embeddings, never the mixes. A MixedBatch
    with ``enqueue_mask`` is refused, as PML refuses an ``indices_tuple`` with it.
    """

    @staticmethod
    def supported_losses():
        return with_metrix_twins(losses.CrossBatchMemory.supported_losses())

    def create_indices_tuple(self, embeddings, labels, E_mem, L_mem, input_indices_tuple, do_remove_self_comparisons):
        if not isinstance(input_indices_tuple, MixedBatch):
            return super().create_indices_tuple(
                embeddings, labels, E_mem, L_mem, input_indices_tuple, do_remove_self_comparisons
            )
        memory_tuple = super().create_indices_tuple(
            embeddings, labels, E_mem, L_mem, input_indices_tuple.indices_tuple, do_remove_self_comparisons
        )
        mixed_batch = copy.copy(input_indices_tuple)  # the same mixes and plan, the memory's tuple
        mixed_batch.indices_tuple = memory_tuple
        return mixed_batch


class SelfSupervisedLoss(losses.SelfSupervisedLoss):
    """PML's ``SelfSupervisedLoss``, also around the Metrix losses whose twin it supports (all but
    proxy anchor). Same arguments and behaviour.

    It passes the loss no ``indices_tuple``, so a Metrix loss inside it is its PML twin, bit for bit.
    To mix, call the loss as the wrapper does, with a MixedBatch: ``labels = torch.arange(B).repeat(2)``,
    ``both = torch.cat([embeddings, ref_emb])``, ``loss(both, labels, MixupMiner()(both, labels))``
    (the symmetric form; its clean part is this wrapper's loss).
    """

    @staticmethod
    def supported_losses():
        return with_metrix_twins(losses.SelfSupervisedLoss.supported_losses())
