"""Checkpoints that load with ``torch.load(weights_only=True)`` and are written atomically."""

import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Dict

import torch

FORMAT = "pml_metrix-checkpoint-v1"


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
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path} is not a pml_metrix checkpoint (expected format {FORMAT!r})")
    return state
