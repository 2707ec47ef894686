"""Checkpoints that load with ``torch.load(weights_only=True)`` and are written atomically, and the
training state they hold."""

import os
import pickle
import random
import tempfile
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict

import numpy as np
import torch

if TYPE_CHECKING:
    from .build import Components

FORMAT = "pml_metrix-checkpoint-v2"
READABLE_FORMATS = ("pml_metrix-checkpoint-v1", FORMAT)  # v1 (pml_metrix 0.1): its weights evaluate, it cannot resume


def save_checkpoint(path: Path, state: Dict[str, Any]) -> None:
    """Write ``state`` (tensors, numbers, strings, lists, dicts) to a temporary file beside
    ``path``, then rename it over ``path``: a crash never leaves a half-written checkpoint, and the
    previous good one stays until the new one is complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as tmp:
            torch.save({"format": FORMAT, **state}, tmp)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def load_checkpoint(path: Path) -> Dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`, with ``weights_only=True``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError) as error:
        raise ValueError(
            f"{path} is not a readable checkpoint (truncated, or not written by pml_metrix): {error}"
        ) from None
    if not isinstance(state, dict) or state.get("format") not in READABLE_FORMATS:
        raise ValueError(f"{path} is not a pml_metrix checkpoint (expected format {FORMAT!r})")
    return state


def rng_state() -> Dict[str, Any]:
    """The global generators' states (torch, numpy, Python) as tensors, numbers and lists."""
    _, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "rest": [int(pos), int(has_gauss), float(cached)]},
        "python": [version, list(internal), gauss],
    }


def set_rng_state(state: Dict[str, Any]) -> None:
    """Restore the global generators from :func:`rng_state`."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(("MT19937", state["numpy"]["keys"].numpy().astype(np.uint32), *state["numpy"]["rest"]))
    random.setstate((state["python"][0], tuple(state["python"][1]), state["python"][2]))


def training_state(components: "Components") -> Dict[str, Any]:
    """What resuming needs besides the epoch and history: every component's state and the RNGs'."""
    return {
        "models": {name: m.state_dict() for name, m in components.models.items()},
        "loss": components.loss.state_dict(),
        "miner": {} if components.miner is None else components.miner.state_dict(),
        "optimizers": {name: o.state_dict() for name, o in components.optimizers.items()},
        "lr_schedulers": {name: s.state_dict() for name, s in components.lr_schedulers.items()},
        "sampler": components.sampler.state_dict(),
        "rng": rng_state(),
    }


def load_training_state(components: "Components", state: Dict[str, Any]) -> None:
    """Load :func:`training_state` into the components and the global generators."""
    for name, m in components.models.items():
        m.load_state_dict(state["models"][name])
    components.loss.load_state_dict(state["loss"])
    if components.miner is not None:
        components.miner.load_state_dict(state["miner"])
    for name, o in components.optimizers.items():
        o.load_state_dict(state["optimizers"][name])
    for name, s in components.lr_schedulers.items():
        s.load_state_dict(state["lr_schedulers"][name])
    components.sampler.load_state_dict(state["sampler"])
    set_rng_state(state["rng"])
