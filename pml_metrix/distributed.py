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

:class:`~pml_metrix.trainers.MetrixTrainer` takes a DistributedMixupMiner too, and mixes at the
feature and input levels across processes with :func:`gather_rows` and :func:`embed_share`.
``pml-metrix train`` under ``torchrun`` puts it all together.
"""

from dataclasses import replace
from typing import Callable, Optional, TypeVar

import torch
from pytorch_metric_learning.miners import BaseMiner
from pytorch_metric_learning.utils.distributed import DistributedMinerWrapper, gather, is_distributed
from torch import Tensor, nn

from .miners import MixupMiner
from .mixed_batch import IndicesTuple, MixedBatch
from .mixing import MixingPlan

__all__ = [
    "DistributedMixupMiner",
    "embed_share",
    "from_rank0",
    "gather_rows",
    "gathered_order",
    "get_rank",
    "get_world_size",
    "without_parameter_gradients",
]

T = TypeVar("T")


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

    @property
    def inner_miner(self) -> Optional[BaseMiner]:
        """The wrapped miner's clean-pair miner: run it on the gathered batch."""
        return self.miner.inner_miner

    def forward(self, emb, labels, ref_emb=None, ref_labels=None) -> MixedBatch:
        if ref_emb is not None or ref_labels is not None:
            raise ValueError("MixupMiner mixes items of one batch: ref_emb and ref_labels are not supported")
        if labels is None:
            raise ValueError("MixupMiner needs the labels: call miner(embeddings, labels)")
        if get_world_size() == 1:
            return self.miner(emb, labels)
        all_emb, all_labels, _ = gather(emb, labels)
        indices_tuple = self.clean_tuple(all_emb, all_labels)
        plan = self.plan(all_emb, all_labels)
        return plan.mixed_batch(plan.mix(all_emb), indices_tuple)

    def clean_tuple(self, all_emb: Tensor, all_labels: Tensor) -> IndicesTuple:
        """The wrapped miner's :meth:`~pml_metrix.MixupMiner.clean_tuple` of the gathered batch, in
        every process (N x d embeddings and N labels in PML's gathered order, as from :func:`gather_rows`)."""
        return self.miner.clean_tuple(all_emb, all_labels)

    def plan(self, all_emb: Tensor, all_labels: Tensor) -> MixingPlan:
        """The plan over the gathered batch (N x d embeddings and N labels in PML's gathered order,
        as from :func:`gather_rows`), the same in every process: drawn on rank 0 over the batch in
        rank order, broadcast, and re-indexed to this process's gathered order."""
        if get_world_size() == 1:
            return self.miner.plan(all_emb, all_labels)
        order = gathered_order(get_rank(), get_world_size(), len(all_emb) // get_world_size(), all_emb.device)
        to_gathered = torch.empty_like(order)
        to_gathered[order] = torch.arange(len(order), device=order.device)
        plan = None
        if get_rank() == 0:  # over the batch in rank order, handed to the others from the CPU
            plan = self.miner.plan(all_emb[to_gathered], all_labels[to_gathered]).to(torch.device("cpu"))
        plan = from_rank0(plan).to(all_emb.device)
        self.miner.num_mixed = len(plan)  # the wrapped miner's stat, in every process
        pair_mask = plan.pair_mask if plan.num_classes is not None else plan.pair_mask[order]  # rows: classes or items
        return replace(plan, source_index=to_gathered[plan.source_index], pair_mask=pair_mask)


def get_world_size() -> int:
    """The number of processes: the process group's size, 1 without one."""
    return torch.distributed.get_world_size() if is_distributed() else 1


def get_rank() -> int:
    """This process's rank: 0 without a process group."""
    return torch.distributed.get_rank() if is_distributed() else 0


def from_rank0(value: T) -> T:
    """Rank 0's ``value`` (any picklable object) in every process; ``value`` itself without a
    process group. Every process must call it; the others wait for rank 0."""
    if get_world_size() == 1:
        return value
    box = [value]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def gather_rows(rows: Tensor) -> Tensor:
    """N x ... rows of every process -> (world_size N) x ... in PML's gathered order: the local rows
    first, keeping their gradient, then the other processes' rows in rank order, without gradient
    (``pytorch_metric_learning.utils.distributed.gather``). The rows themselves in one process."""
    return rows if get_world_size() == 1 else gather(rows, None)[0]


def without_parameter_gradients(module: nn.Module) -> Callable[[Tensor], Tensor]:
    """``module`` (the module inside a DDP wrapper) run with its parameters detached: its values, and
    gradients to its input, but no gradient to its parameters (nor through DDP)."""
    if isinstance(module, nn.parallel.DistributedDataParallel):
        module = module.module
    return lambda x: torch.func.functional_call(module, {k: p.detach() for k, p in module.named_parameters()}, (x,))


def embed_share(
    mixed: Tensor, embed: Callable[[Tensor], Tensor], embed_without_parameter_gradients: Callable[[Tensor], Tensor]
) -> Tensor:
    """K x ... mixes that every process holds alike -> their K x d embeddings, where this process's
    share of the rows (every world_size-th, from its rank on) goes through ``embed`` (DDP-wrapped
    models: gradients to the parameters and the mixes) and the other rows through
    ``embed_without_parameter_gradients`` (the same models, gradients to the mixes only).

    Each process holds its own rows' gradient, as PML's gather does: with
    ``DistributedLossWrapper``'s world_size scaling, DDP's average counts every mix's parameter
    gradient once, and each process's sources of a mix (the local rows of :func:`gather_rows`) get
    their whole gradient. Models in train mode see each part as a batch (BatchNorm statistics
    per part)."""
    own = torch.arange(len(mixed), device=mixed.device) % get_world_size() == get_rank()
    rows = [torch.where(own)[0], torch.where(~own)[0]]
    parts = [f(mixed[r]) for f, r in zip((embed, embed_without_parameter_gradients), rows) if len(r)]
    return torch.cat(parts).index_select(0, torch.argsort(torch.cat(rows)))
