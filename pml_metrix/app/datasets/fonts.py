"""Font identity: a class is one font face, an item is one rendered glyph (A-Z, a-z, 0-9).

Families (see :mod:`.font_list`) are shuffled with ``seed``, then each is dealt to the split furthest
below its share of the faces (test: ``test_fraction``; val: ``val_fraction`` of the rest; train: the
remainder), so no family straddles two splits. The split is computed on the whole committed list,
so a missing font never moves another between splits. ``train_fraction`` keeps a seeded subset of the
train families holding about that share of the train faces (nested: a quarter lies inside a half),
leaving val and test as they are, to study how a method scales with the amount of training data.
Train items may add ``jitter_copies`` seeded affine renders per glyph; val and test hold exactly one
clean render per glyph, so a query never meets a jittered twin of itself.

Renders are cached as uint8 tensors under ``cache_dir`` (default ``~/.cache/pml_metrix/fonts``), one
file per split, keyed by the faces (path, size, mtime), image size, jitter settings and the versions of
Pillow and FreeType.
"""

import hashlib
import logging
import os
import time
from dataclasses import astuple
from numbers import Real
from pathlib import Path
from typing import Optional

import PIL
import torch
from PIL import features
from torch.utils.data import Dataset

from ..files import write_atomically
from .font_list import FONT_LIST_PATH, FontFace, installed_fonts, read_font_list
from .glyphs import GLYPHS, Jitter, render_face

SPLITS = ("train", "val", "test")
RENDER_VERSION = 1  # bump when glyphs.render_face changes its output
logger = logging.getLogger(__name__)


def default_cache_dir() -> str:
    cache_home = os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache"))
    return os.path.join(cache_home, "pml_metrix", "fonts")


def split_families(
    faces: list[FontFace], seed: int = 0, val_fraction: float = 0.2, test_fraction: float = 0.5
) -> dict[str, str]:
    """Map each family of ``faces`` to "train", "val" or "test" (shares counted in faces)."""
    sizes: dict[str, int] = {}
    for face in faces:
        sizes[face.family] = sizes.get(face.family, 0) + 1
    families = sorted(sizes)
    order = torch.randperm(len(families), generator=torch.Generator().manual_seed(seed)).tolist()
    targets = {"test": test_fraction, "val": val_fraction * (1 - test_fraction)}
    targets["train"] = 1 - targets["test"] - targets["val"]
    dealt = dict.fromkeys(SPLITS, 0)
    assignment = {}
    for family in (families[i] for i in order):
        # to the split furthest below its share of the faces
        split = max(SPLITS, key=lambda name: targets[name] * len(faces) - dealt[name])
        assignment[family], dealt[split] = split, dealt[split] + sizes[family]
    return assignment


def subset_families(faces: list[FontFace], fraction: float, seed: int = 0) -> list[FontFace]:
    """The faces of a seeded subset of the families of ``faces`` holding ``fraction`` of the faces
    (families taken in a seeded order until the share is reached, at least one), in list order.
    A smaller fraction keeps a prefix of a larger one's families."""
    if not 0 < fraction <= 1:
        raise ValueError(f"train_fraction must lie in (0, 1], got {fraction!r}")
    families = sorted({face.family for face in faces})
    order = torch.randperm(len(families), generator=torch.Generator().manual_seed(seed)).tolist()
    kept, count = set(), 0
    for family in (families[i] for i in order):
        if kept and count >= fraction * len(faces):
            break
        kept.add(family)
        count += sum(face.family == family for face in faces)
    return [face for face in faces if face.family in kept]


def _cache_key(faces: list[FontFace], image_size: int, jitter: Jitter, seed: int) -> str:
    renderer = (RENDER_VERSION, PIL.__version__, features.version("freetype2"))
    digest = hashlib.sha256(repr((renderer, GLYPHS, image_size, astuple(jitter), seed)).encode())
    for face in faces:
        stat = os.stat(face.path)
        digest.update(repr((face.path, stat.st_size, stat.st_mtime_ns)).encode())
    return digest.hexdigest()[:20]


def _render_split(
    faces: list[FontFace], image_size: int, jitter: Jitter, seed: int, cache_dir: str
) -> torch.Tensor:
    """F x G x R x S x S uint8 renders (R = 1 clean + jitter.copies), from the cache when present."""
    path = os.path.join(cache_dir, f"glyphs-{_cache_key(faces, image_size, jitter, seed)}.pt")
    if os.path.isfile(path):
        try:
            return torch.load(path, weights_only=True)
        except Exception as error:  # noqa: BLE001 - a damaged file (its error depends on where it breaks): render again
            logger.warning("the cached renders %s are unreadable (%s): rendering them again", path, error)
    start = time.perf_counter()
    renders = []
    for face in faces:
        clean, jittered = render_face(face.path, image_size, jitter, seed)
        renders.append(torch.cat([clean.unsqueeze(1), jittered], dim=1))
    images = torch.stack(renders)
    # readers see the whole file or none; other processes may render into the cache at once
    write_atomically(Path(path), lambda file: torch.save(images, file), remove_stale=False)
    logger.info("rendered %d faces in %.1f s into %s", len(faces), time.perf_counter() - start, path)
    return images


class FontGlyphs(Dataset):
    """Rendered glyphs of the faces in one split; ``seed`` sets both the family split and the jitter.

    ``images``: N x 1 x S x S uint8 (ink 255 on 0), face by face, glyph by glyph, the clean render
    before its jittered copies; ``labels``: N LongTensor, the index of the face in ``faces``; items are
    ``(image float32 1 x S x S in [0, 1], label)``.
    """

    def __init__(
        self,
        split: str = "train",
        image_size: int = 32,
        jitter_copies: int = 0,
        seed: int = 0,
        val_fraction: float = 0.2,
        test_fraction: float = 0.5,
        train_fraction: float = 1.0,
        font_list: str = FONT_LIST_PATH,
        cache_dir: Optional[str] = None,
    ):
        if split not in SPLITS:
            raise ValueError(f"Unknown fonts split {split!r}; valid: {', '.join(SPLITS)}")
        for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
            if not isinstance(value, Real) or isinstance(value, bool) or not 0 <= value < 1:
                raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
        if not isinstance(train_fraction, Real) or isinstance(train_fraction, bool):
            raise ValueError(f"train_fraction must be a number in (0, 1], got {train_fraction!r}")
        if not isinstance(jitter_copies, int) or isinstance(jitter_copies, bool) or jitter_copies < 0:
            raise ValueError(f"jitter_copies must be an integer >= 0, got {jitter_copies!r}")
        if not os.path.isfile(font_list):
            raise FileNotFoundError(
                f"Font list {font_list} not found; regenerate it with python -m pml_metrix.app.datasets.make_font_list"
            )
        listed = read_font_list(font_list)
        families = split_families(listed, seed, val_fraction, test_fraction)
        in_split = [face for face in listed if families[face.family] == split]
        if split == "train" and train_fraction != 1:
            in_split = subset_families(in_split, train_fraction, seed)
        self.faces = installed_fonts(in_split)
        if not self.faces:
            raise ValueError(
                f"No installed font in the {split!r} split of {font_list} ({len(in_split)} listed; is val_fraction or "
                "test_fraction 0?)"
            )
        jitter = Jitter(copies=jitter_copies if split == "train" else 0)
        renders = _render_split(self.faces, image_size, jitter, seed, cache_dir or default_cache_dir())
        self.images = renders.flatten(0, 2).unsqueeze(1)
        self.labels = torch.arange(len(self.faces)).repeat_interleave(renders[0].numel() // image_size**2)
        self.num_classes = len(self.faces)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index].float() / 255, int(self.labels[index])
