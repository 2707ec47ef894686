"""Render the glyph set of one font face to small grayscale images (ink 255 on background 0).

Rendering is deterministic: FreeType through PIL with its basic layout engine (no raqm), each glyph
drawn large in a square frame common to the whole face (so relative glyph sizes and baselines are
kept), optionally jittered by a seeded affine map, then reduced to ``image_size`` with a box filter.
"""

import hashlib
from dataclasses import dataclass

import torch
from PIL import Image, ImageDraw, ImageFont
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

GLYPHS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
SUPERSAMPLE = 4  # glyphs are drawn about SUPERSAMPLE x image_size, then box-filtered down
MARGIN = 0.06  # share of the image left blank on each side, room for the jitter
UNMAPPED_CHAR = "\U0010fffd"  # a plane-16 private-use code point: renders as the face's .notdef


@dataclass(frozen=True)
class Jitter:
    """Seeded affine jitter of the training renders: ``copies`` extra renders per glyph."""

    copies: int = 0
    degrees: float = 6.0  # rotation drawn uniformly in [-degrees, degrees]
    translate: float = 0.05  # shift per axis, as a share of the image side
    scale: float = 0.08  # scale drawn uniformly in [1 - scale, 1 + scale]
    shear: float = 6.0  # x shear in degrees, uniform in [-shear, shear]


def load_face(path: str, pixel_size: int) -> ImageFont.FreeTypeFont:
    """Load a font file at ``pixel_size`` pixels per em with PIL's basic (deterministic) layout."""
    try:
        return ImageFont.truetype(path, pixel_size, layout_engine=ImageFont.Layout.BASIC)
    except OSError as error:  # FreeType's "unknown file format", or an unreadable file
        raise OSError(f"{path} is not a font file FreeType can read ({error}): list font files only") from error


def _glyph_mask(font: ImageFont.FreeTypeFont, char: str) -> tuple[tuple[int, int, int, int], bytes]:
    bbox = font.getbbox(char, anchor="ls")
    return bbox, bytes(font.getmask(char))


def missing_glyphs(path: str, chars: str = GLYPHS) -> str:
    """The characters of ``chars`` that the face at ``path`` draws blank or as its .notdef glyph."""
    font = load_face(path, 48)
    notdef = _glyph_mask(font, UNMAPPED_CHAR)
    missing = []
    for char in chars:
        bbox, mask = _glyph_mask(font, char)
        if (bbox, mask) == notdef or not any(mask):
            missing.append(char)
    return "".join(missing)


def _seed_for(seed: int, face_key: str) -> int:
    digest = hashlib.sha256(f"{seed}:{face_key}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def render_face(
    path: str, image_size: int = 32, jitter: Jitter = Jitter(), seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Render every glyph of ``GLYPHS`` with the face at ``path``.

    Returns ``clean`` (G x S x S uint8) and ``jittered`` (G x copies x S x S uint8), G = len(GLYPHS),
    S = image_size. The jitter of a face depends only on ``seed`` and ``path``.
    """
    font = load_face(path, round(image_size * SUPERSAMPLE * (1 - 2 * MARGIN)))
    boxes = [font.getbbox(char, anchor="ls") for char in GLYPHS]
    top = min(box[1] for box in boxes)
    height = max(box[3] for box in boxes) - top
    # one square frame for the whole face: every glyph on the same baseline, at the same scale
    frame = max(height, max(box[2] - box[0] for box in boxes))
    side = round(frame / (1 - 2 * MARGIN))
    baseline = (side - height) // 2 - top
    generator = torch.Generator().manual_seed(_seed_for(seed, path))
    clean = torch.empty(len(GLYPHS), image_size, image_size, dtype=torch.uint8)
    jittered = torch.empty(len(GLYPHS), jitter.copies, image_size, image_size, dtype=torch.uint8)
    for index, (char, box) in enumerate(zip(GLYPHS, boxes)):
        canvas = Image.new("L", (side, side), 0)
        left = (side - (box[2] - box[0])) // 2 - box[0]
        ImageDraw.Draw(canvas).text((left, baseline), char, fill=255, font=font, anchor="ls")
        clean[index] = _reduce(canvas, image_size)
        for copy in range(jitter.copies):
            jittered[index, copy] = _reduce(_affine(canvas, jitter, generator), image_size)
    return clean, jittered


def _uniform(generator: torch.Generator, bound: float) -> float:
    return (torch.rand((), generator=generator).item() * 2 - 1) * bound


def _affine(canvas: Image.Image, jitter: Jitter, generator: torch.Generator) -> Image.Image:
    side = canvas.width
    return TF.affine(
        canvas,
        angle=_uniform(generator, jitter.degrees),
        translate=[round(_uniform(generator, jitter.translate) * side) for _ in range(2)],
        scale=1 + _uniform(generator, jitter.scale),
        shear=[_uniform(generator, jitter.shear), 0.0],
        interpolation=InterpolationMode.BILINEAR,
        fill=0,
    )


def _reduce(canvas: Image.Image, image_size: int) -> torch.Tensor:
    small = canvas.resize((image_size, image_size), Image.Resampling.BOX)
    return torch.frombuffer(bytearray(small.tobytes()), dtype=torch.uint8).view(image_size, image_size)
