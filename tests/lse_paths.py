"""Force one form of :func:`pml_metrix.functional.weighted_logsumexp` for soft weights, so that small
test cases cover the list form that large matrices take by default."""

import contextlib
from typing import Iterator
from unittest import mock

from pml_metrix import functional as F

PATHS = ("dense", "list")


@contextlib.contextmanager
def lse_path(path: str) -> Iterator[None]:
    """``dense``: never the list of kept terms; ``list``: always (for 2-D soft weights)."""
    settings = {"dense": (float("inf"), 0.0), "list": (0, 1.0)}[path]
    with mock.patch.object(F, "SPARSE_MIN_TERMS", settings[0]), mock.patch.object(F, "SPARSE_FRACTION", settings[1]):
        yield
