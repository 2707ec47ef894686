"""Writing a run's files so that a crash, a kill or a full disk never leaves a half-written one."""

import errno
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable


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
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            kept = f"{path} is the previous one, intact" if path.exists() else "nothing was written"
            raise OSError(errno.ENOSPC, f"no space left on the device writing {path} ({kept}): free some space "
                          "and run again (--resume continues from the last checkpoint)") from None
        raise


def write_text(path: Path, text: str) -> None:
    """Write a text file (results, configs, reports) atomically (:func:`write_atomically`)."""
    write_atomically(path, lambda file: file.write(text.encode()))
