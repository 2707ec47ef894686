"""Where datasets live when no root is given: ``$PML_METRIX_DATA/<name>``, default ``~/data/<name>``."""

import os


def default_root(name: str) -> str:
    """The default folder of dataset ``name``."""
    return os.path.join(os.environ.get("PML_METRIX_DATA", os.path.expanduser("~/data")), name)
