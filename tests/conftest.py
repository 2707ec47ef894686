import os

import pytest
from hypothesis import settings

from pml_metrix.app.datasets.font_list import read_font_list, write_font_list

# CI replays the same examples on every run (a red run must mean a real change); local runs
# draw new ones each time and keep failures in .hypothesis/.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


SMALL_FAMILIES = ("Andika", "Cantarell", "Carlito", "Caladea", "Go", "Dosis", "Quicksand", "Comfortaa")


@pytest.fixture
def small_font_list(tmp_path):
    """A font list of two faces from each of eight families of the committed list."""
    listed = read_font_list()
    faces = [face for family in SMALL_FAMILIES for face in [f for f in listed if f.family == family][:2]]
    path = tmp_path / "fonts.txt"
    write_font_list(faces, str(path))
    return str(path), faces


def pytest_configure(config):
    config.addinivalue_line(
        "markers", 'slow: trains models, starts processes or builds the docs (CI runs them; scripts/test -m "not slow" skips them)'
    )
