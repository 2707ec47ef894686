"""Writing a run's files so that a crash, a kill or a full disk never leaves a half-written one."""

import errno
import json
import math
import os
import sqlite3
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable, Dict


def write_atomically(path: Path, write: Callable[[BinaryIO], None], remove_stale: bool = True) -> None:
    """Write a file through ``write(file)`` into a temporary file beside ``path``, then rename it over
    ``path``: a crash never leaves a half-written file, and the previous one stays until the new one
    is complete. Temporary files that a killed earlier write left are removed first (``remove_stale``;
    not in a folder that several processes write at once, where they may be another's live ones). A
    full disk is an OSError that says so, the previous file intact. The file gets the usual mode
    (0666 less the umask)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if remove_stale:
        for stale in path.parent.glob(path.name + ".*.tmp"):
            stale.unlink(missing_ok=True)
    handle, tmp_name = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(handle, 0o666 & ~umask)
        with os.fdopen(handle, "wb") as tmp:
            write(tmp)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
    except BaseException as error:
        Path(tmp_name).unlink(missing_ok=True)
        if out_of_space(error):  # torch.save raises a RuntimeError while handling the OSError
            kept = f"{path} is the previous one, intact" if path.exists() else "nothing was written"
            raise OSError(errno.ENOSPC, f"no space left on the device writing {path} ({kept}): free some space "
                          "and run again (--resume continues from the last checkpoint)") from None
        raise


def out_of_space(error: BaseException) -> bool:
    """Whether ``error``, or an error it was raised from or while handling, is a full disk: an
    ``ENOSPC`` OSError, or SQLite's "database or disk is full"."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            return True
        if isinstance(error, sqlite3.OperationalError) and "disk is full" in str(error):
            return True
        error = error.__cause__ or error.__context__
    return False


def write_text(path: Path, text: str) -> None:
    """Write a text file (results, configs, reports) atomically (:func:`write_atomically`)."""
    write_atomically(path, lambda file: file.write(text.encode()))


def strict_json(data: Any) -> Any:
    """``data`` with every non-finite float (NaN, inf: no value) as ``None``, so that it dumps as
    strict JSON (``null``) that any parser reads."""
    if isinstance(data, float) and not math.isfinite(data):
        return None
    if isinstance(data, dict):
        return {key: strict_json(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [strict_json(value) for value in data]
    return data


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as strict JSON (:func:`strict_json`; ``allow_nan=False`` checks it) atomically."""
    write_text(path, json.dumps(strict_json(data), indent=1, allow_nan=False))


def metrics_from_json(metrics: Dict[str, Any]) -> Dict[str, Any]:
    """A metrics dict read back from strict JSON: ``null`` (no value) as NaN again."""
    return {name: math.nan if value is None else value for name, value in metrics.items()}
