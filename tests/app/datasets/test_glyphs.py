import torch

from pml_metrix.app.datasets.glyphs import GLYPHS, Jitter, missing_glyphs, render_face

LATIN_FACE = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
DEVANAGARI_FACE = "/usr/share/fonts/truetype/noto/NotoSansDevanagari-Regular.ttf"


def test_latin_face_covers_every_glyph():
    assert missing_glyphs(LATIN_FACE) == ""


def test_face_without_latin_is_reported_missing_them():
    assert set("AZaz") <= set(missing_glyphs(DEVANAGARI_FACE))


def test_render_is_deterministic_with_ink_in_every_glyph():
    clean, jittered = render_face(LATIN_FACE, image_size=24, jitter=Jitter(copies=2), seed=3)
    again_clean, again_jittered = render_face(LATIN_FACE, image_size=24, jitter=Jitter(copies=2), seed=3)
    assert clean.shape == (len(GLYPHS), 24, 24) and clean.dtype == torch.uint8
    assert jittered.shape == (len(GLYPHS), 2, 24, 24)
    assert torch.equal(clean, again_clean) and torch.equal(jittered, again_jittered)
    assert (clean.flatten(1).amax(1) > 128).all()


def test_jitter_depends_on_seed_and_leaves_clean_renders_alone():
    clean, jittered = render_face(LATIN_FACE, image_size=24, jitter=Jitter(copies=1), seed=0)
    other_clean, other_jittered = render_face(LATIN_FACE, image_size=24, jitter=Jitter(copies=1), seed=1)
    assert torch.equal(clean, other_clean)
    assert not torch.equal(jittered, other_jittered)
    assert not torch.equal(jittered[:, 0], clean)
