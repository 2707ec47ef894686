"""Samplers for training in several processes."""

from typing import Dict, Iterator, Optional, Sequence

import torch
from pytorch_metric_learning.samplers import MPerClassSampler
from pytorch_metric_learning.utils.distributed import is_distributed
from torch import Tensor

from .distributed import from_rank0, get_rank, get_world_size

__all__ = ["DistributedMPerClassSampler"]


class DistributedMPerClassSampler(MPerClassSampler):
    """PML's ``MPerClassSampler`` over the *global* batch, of which each process takes its share.

    Each global batch of ``batch_size`` items (``batch_size / m`` classes, ``m`` items each, the
    items of a class side by side) is cut into ``world_size`` consecutive shares of
    ``batch_size / world_size`` items: process ``rank`` gets share ``rank``. A share is a whole
    number of ``m``-item groups, so every class of a batch lies in one process, with all its ``m``
    items, and the shares in rank order are the batch one process would draw. Give the
    ``DataLoader`` (or PML trainer) ``batch_size / world_size`` as its batch size.

    The draws are PML's (numpy's global generator). In a process group, rank 0 draws each epoch's
    list and broadcasts it, so every process cuts the same batches whatever its numpy state; rank 0
    draws exactly what a single process would. Without a process group (e.g. to look at the shares),
    each sampler draws its own list: seed numpy alike.

    Args:
        labels: the dataset's N class labels.
        m: items per class in a batch.
        batch_size: the global batch size, a multiple of ``m * world_size``.
        length_before_new_iter: items per epoch over all processes (rounded down to whole batches).
        rank: this process's rank in ``[0, world_size)``; by default the process group's (0 without
            one). In a process group it must be the group's.
        world_size: the number of processes; by default the process group's size (1 without one). In
            a process group it must be the group's. Without one, give both to look at a share.
    """

    def __init__(
        self,
        labels: Sequence[int],
        m: int,
        batch_size: int,
        length_before_new_iter: int = 100000,
        rank: Optional[int] = None,
        world_size: Optional[int] = None,
    ):
        rank = get_rank() if rank is None else rank
        world_size = get_world_size() if world_size is None else world_size
        if is_distributed() and (rank, world_size) != (get_rank(), get_world_size()):
            raise ValueError(
                f"rank {rank} of world_size {world_size} is not this process's place in its process group (rank "
                f"{get_rank()} of {get_world_size()}): leave rank and world_size out, the sampler reads them from the group"
            )
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must lie in [0, world_size) = [0, {world_size}), got {rank}")
        if batch_size % (int(m) * world_size):
            raise ValueError(
                f"batch_size {batch_size} does not split into {world_size} shares of whole groups of "
                f"m={m} items of a class: make it a multiple of {int(m) * world_size}"
            )
        super().__init__(labels, m, batch_size, length_before_new_iter)
        self.rank, self.world_size = rank, world_size
        self.share_size = self.batch_size // world_size

    def __len__(self) -> int:
        return self.list_size // self.world_size

    def state_dict(self) -> Dict[str, Tensor]:
        """The sampler's draw state: PML's class order, which each epoch shuffles in place."""
        return {"classes": torch.tensor(self.labels)}

    def load_state_dict(self, state: Dict[str, Tensor]) -> None:
        classes = state["classes"].tolist()
        if sorted(classes) != sorted(self.labels):
            raise ValueError("the sampler state lists other classes than this training set's: it belongs to another run")
        self.labels = classes

    def __iter__(self) -> Iterator[int]:
        indices = from_rank0(list(super().__iter__()) if get_rank() == 0 else None)
        for start in range(self.rank * self.share_size, len(indices), self.batch_size):
            yield from indices[start : start + self.share_size]
