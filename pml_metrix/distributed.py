"""Metrix under ``torch.distributed``: a MixupMiner wrapper for PML's distributed wrappers.

PML's ``DistributedLossWrapper(loss)`` gathers every process's embeddings (the local rows first and
keeping their gradient, then the other ranks' rows in rank order, without gradient), computes the
loss on that batch and multiplies it by the world size, so that DDP's gradient averaging gives the
gradient of the loss on the whole batch. It passes ``indices_tuple`` through as it is, so a
:class:`~pml_metrix.MixedBatch` reaches the Metrix loss, provided its indices refer to that gathered
order. :class:`DistributedMixupMiner` makes one: it gathers like the loss wrapper, draws the mixing
plan on rank 0 over the batch in rank order (the batch one process would see), broadcasts it and
re-indexes it to each process's gathered order. Every process then computes the same loss, and the
local rows get the gradient of the single-process loss on the concatenated batch times the world size.

    loss_fn = DistributedLossWrapper(pml_metrix.MetrixMSLoss())
    miner = pml_metrix.distributed.DistributedMixupMiner(pml_metrix.MixupMiner(seed=0))
    loss = loss_fn(embeddings, labels, miner(embeddings, labels))

Only ``efficient=False`` is supported: the efficient mode scores local anchors against the gathered
batch, while a MixedBatch's pair mask has a row per anchor of the batch the plan was drawn on.
"""

import torch
from pytorch_metric_learning.utils.distributed import DistributedMinerWrapper, gather, is_distributed
from torch import Tensor

from .miners import MixupMiner
from .mixed_batch import MixedBatch
from .mixing import MixingPlan

__all__ = ["DistributedMixupMiner", "gathered_order"]


def gathered_order(rank: int, world_size: int, local_size: int, device=None) -> Tensor:
    """The rank-order position of each row of PML's gathered batch: the local rows first, then the
    other ranks' rows in rank order (``pytorch_metric_learning.utils.distributed.gather``)."""
    ranks = [rank] + [r for r in range(world_size) if r != rank]
    return torch.cat([torch.arange(r * local_size, (r + 1) * local_size, device=device) for r in ranks])


class DistributedMixupMiner(DistributedMinerWrapper):
    """PML's ``DistributedMinerWrapper`` for a :class:`~pml_metrix.MixupMiner`: returns a
    :class:`~pml_metrix.MixedBatch` over the gathered batch, drawn once (on rank 0, over the batch in
    rank order) and the same in every process. Use it with ``DistributedLossWrapper(efficient=False)``.
    Every process must pass the same number of embeddings (``all_gather`` requires it).
    """

    def __init__(self, miner: MixupMiner, efficient: bool = False):
        if not isinstance(miner, MixupMiner):
            raise TypeError(f"DistributedMixupMiner wraps a MixupMiner, got {type(miner).__name__}")
        if efficient:
            raise ValueError(
                "DistributedMixupMiner supports efficient=False only: a MixedBatch needs the whole "
                "gathered batch as anchors (use DistributedLossWrapper(loss, efficient=False))"
            )
        super().__init__(miner, efficient=False)

    def forward(self, emb, labels, ref_emb=None, ref_labels=None) -> MixedBatch:
        if ref_emb is not None or ref_labels is not None:
            raise ValueError("MixupMiner mixes items of one batch: ref_emb and ref_labels are not supported")
        if labels is None:
            raise ValueError("MixupMiner needs the labels: call miner(embeddings, labels)")
        if not is_distributed() or torch.distributed.get_world_size() <= 1:
            return self.miner(emb, labels)
        self.miner.reset_stats()
        all_emb, all_labels, _ = gather(emb, labels)
        order = gathered_order(torch.distributed.get_rank(), torch.distributed.get_world_size(), len(emb), emb.device)
        to_gathered = torch.empty_like(order)
        to_gathered[order] = torch.arange(len(order), device=order.device)
        plan = self._rank_order_plan(all_emb[to_gathered], all_labels[to_gathered])
        pair_mask = plan.pair_mask if self.miner.num_classes is not None else plan.pair_mask[order]
        plan = MixingPlan(to_gathered[plan.source_index], plan.lam, pair_mask)
        inner = self.miner.inner_miner
        indices_tuple = None if inner is None else inner(all_emb, all_labels)
        self.miner.num_mixed = len(plan)
        return plan.mixed_batch(plan.mix(all_emb), indices_tuple)

    def _rank_order_plan(self, embeddings: Tensor, labels: Tensor) -> MixingPlan:
        """The miner's plan over the batch in rank order, drawn on rank 0 and broadcast."""
        box = [None]
        if torch.distributed.get_rank() == 0:
            plan = self.miner.plan(embeddings, labels)
            box = [MixingPlan(plan.source_index.cpu(), plan.lam.cpu(), plan.pair_mask.cpu())]
        torch.distributed.broadcast_object_list(box, src=0)
        plan = box[0]
        device = embeddings.device
        return MixingPlan(plan.source_index.to(device), plan.lam.to(device), plan.pair_mask.to(device))
