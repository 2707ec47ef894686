import warnings

import pytest

from pml_metrix.app.datasets.font_list import (
    FONT_PACKAGES,
    FontFace,
    build_font_list,
    installed_fonts,
    missing_fonts,
    read_font_list,
    write_font_list,
)
from pml_metrix.app.datasets.glyphs import missing_glyphs


def test_committed_list_is_installed_latin_and_from_the_packages():
    faces = read_font_list()
    assert len(faces) > 300
    assert missing_fonts(faces) == []
    assert {face.package for face in faces} <= set(FONT_PACKAGES)
    assert len({face.path for face in faces}) == len(faces)
    assert all(missing_glyphs(face.path) == "" for face in faces[::25])


def test_list_round_trips(tmp_path, small_font_list):
    _, faces = small_font_list
    write_font_list(faces, str(tmp_path / "again.txt"))
    assert read_font_list(str(tmp_path / "again.txt")) == faces


def test_missing_fonts_are_named_with_their_install_command(small_font_list):
    _, faces = small_font_list
    absent = FontFace("fonts-nowhere", "Nowhere", "Nowhere Regular", "/nonexistent/Nowhere.ttf")
    assert missing_fonts([*faces, absent]) == [absent]
    with pytest.warns(UserWarning, match=r"Nowhere Regular.*not comparable.*apt-get install -y fonts-nowhere"):
        assert installed_fonts([*faces, absent]) == faces
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert installed_fonts(faces) == faces


def test_build_drops_copies_and_merges_clone_families():
    faces = build_font_list(("fonts-liberation", "fonts-liberation2", "fonts-croscore"))
    names = [face.face for face in faces]
    # every Liberation face is kept (first package); Arimo redraws Liberation Sans: all copies
    assert sum(face.package == "fonts-liberation" for face in faces) == 16
    assert not any(name.startswith("Arimo") for name in names)
    assert sum(face.package == "fonts-liberation2" for face in faces) < 12
    # the surviving near-clones (Tinos, Cousine) share Liberation's split family
    assert {face.family for face in faces} == {"Cousine+Liberation+Tinos"}
