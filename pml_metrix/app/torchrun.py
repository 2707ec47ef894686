"""``pml-metrix train`` under ``torchrun``: how many processes it launched, and their process group."""

import contextlib
import gc
import os
from typing import Iterator

import torch


def torchrun_world_size() -> int:
    """The number of processes ``torchrun`` launched (its ``WORLD_SIZE``); 1 outside torchrun."""
    return int(os.environ.get("WORLD_SIZE", "1")) if torch.distributed.is_torchelastic_launched() else 1


@contextlib.contextmanager
def torchrun_process_group(device: torch.device) -> Iterator[None]:
    """Under ``torchrun`` with several processes, the default process group for its block (nccl
    with each process on ``cuda:LOCAL_RANK`` for a CUDA ``device``, else gloo), destroyed at its end.
    Elsewhere nothing."""
    if torchrun_world_size() == 1:
        yield
        return
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        yield
        torch.distributed.barrier()  # every process done with the group before any tears it down
    finally:
        # free the block's DDP model, which PML's trainer keeps in reference cycles, while the group
        # and the interpreter live: gloo's threads holding its tensors aborted one process in ~10
        # at exit ("terminate called without an active exception")
        gc.collect()
        torch.distributed.destroy_process_group()
