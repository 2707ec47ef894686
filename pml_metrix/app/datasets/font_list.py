"""The committed list of font faces (``fonts.txt``) that defines the font-identity dataset.

Each line holds ``package<TAB>family<TAB>face<TAB>path``: the Debian package that ships the file, the
split family (faces of one family never straddle train / val / test), the face name and the file.
A family is the first word of the typographic family name ("Latin" for all Latin Modern faces),
merged with every family that holds a near-clone of one of its faces (URW fonts and their TeX Gyre
and FreeFont derivatives form one family).

Regenerate on Debian with the packages installed: ``python -m pml_metrix.app.datasets.make_font_list``.
"""

import os
import subprocess
import warnings
from dataclasses import dataclass, replace
from typing import Optional

import torch

from .glyphs import load_face, missing_glyphs, render_face

FONT_LIST_PATH = os.path.join(os.path.dirname(__file__), "fonts.txt")
FONT_PACKAGES = (
    "fonts-dejavu-core fonts-dejavu-extra fonts-liberation fonts-liberation2 fonts-urw-base35 "
    "fonts-texgyre fonts-cantarell fonts-open-sans fonts-roboto-unhinted fonts-freefont-ttf "
    "fonts-crosextra-carlito fonts-crosextra-caladea fonts-croscore fonts-noto-core "
    "fonts-linuxlibertine fonts-ebgaramond fonts-sil-gentium fonts-sil-charis fonts-sil-andika "
    "fonts-lato fonts-go fonts-hack fonts-inconsolata fonts-comic-neue fonts-cabin fonts-quicksand "
    "fonts-dosis fonts-comfortaa fonts-karla fonts-manrope fonts-b612 fonts-courier-prime "
    "fonts-oldstandard fonts-vollkorn fonts-lmodern"
).split()
FONT_SUFFIXES = (".ttf", ".otf", ".pfb", ".t1")  # in order of preference among copies of a face
DUPLICATE_DISTANCE = 0.005  # mean absolute pixel difference (0-1 scale) under which a face is a copy
CLONE_DISTANCE = 0.015  # under which two faces count as one design: their families are merged
# symbol and dingbat faces map the letters to symbols; math and script faces borrow a text face's Latin
NON_TEXT_FAMILY_WORDS = ("Math", "Symbols", "Symbol", "D050000L", "Nushu")


@dataclass(frozen=True)
class FontFace:
    package: str
    family: str
    face: str
    path: str


def read_font_list(path: str = FONT_LIST_PATH) -> list[FontFace]:
    """The faces listed in ``path``, in file order; a malformed line or a font file listed twice is refused."""
    faces = []
    with open(path) as lines:
        for number, line in enumerate(lines, 1):
            if line.startswith("#"):
                continue
            fields = line.rstrip("\n").split("\t")
            if len(fields) != 4:
                raise ValueError(f"{path} line {number}: expected package, family, face, path separated by tabs, "
                                 f"got {len(fields)} field(s)")
            faces.append(FontFace(*fields))
    paths = [face.path for face in faces]
    repeated = sorted({p for p in paths if paths.count(p) > 1})
    if repeated:
        raise ValueError(f"{path} lists {', '.join(repeated)} twice: two classes of the same images; keep one line each")
    return faces


def missing_fonts(faces: Optional[list[FontFace]] = None) -> list[FontFace]:
    """The listed faces whose file is not installed on this machine."""
    faces = read_font_list() if faces is None else faces
    return [face for face in faces if not os.path.isfile(face.path)]


def install_command(faces: list[FontFace]) -> str:
    """The apt-get line that installs the packages of ``faces``."""
    return "apt-get install -y " + " ".join(sorted({face.package for face in faces}))


def installed_fonts(faces: Optional[list[FontFace]] = None) -> list[FontFace]:
    """The listed faces present here; warns once, naming the missing ones and how to install them."""
    faces = read_font_list() if faces is None else faces
    missing = missing_fonts(faces)
    if missing:
        names = ", ".join(face.face for face in missing)
        warnings.warn(
            f"{len(missing)} of {len(faces)} listed fonts are not installed ({names}); running on "
            f"the {len(faces) - len(missing)} installed ones, so results are not comparable with "
            f"runs on the full list. Install them with: {install_command(missing)}",
            stacklevel=2,
        )
    return [face for face in faces if face not in missing]


def _package_font_files(package: str) -> list[str]:
    listing = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True, check=True)
    files = [
        path
        for path in listing.stdout.split()
        # variable fonts ("Name[wght].ttf") render only their default instance, a static face's copy
        if path.endswith(FONT_SUFFIXES) and "[" not in path
        and os.path.isfile(path) and not os.path.islink(path)
    ]
    return sorted(files, key=lambda path: (FONT_SUFFIXES.index(os.path.splitext(path)[1]), path))


def _first_of_each_copy_set(distances: torch.Tensor) -> list[int]:
    """Indices of the faces (F x F mean pixel distances, in list order) that copy no earlier kept face."""
    kept: list[int] = []
    for index in range(len(distances)):
        if not kept or distances[index, kept].min() >= DUPLICATE_DISTANCE:
            kept.append(index)
    return kept


def _merge_clone_families(families: list[str], distances: torch.Tensor) -> dict[str, str]:
    """Map each family to its merged name: families linked by a pair of faces (F x F distances)
    closer than CLONE_DISTANCE form one, named by its members joined with "+"."""
    parent = {family: family for family in families}

    def root(family: str) -> str:
        while parent[family] != family:
            family = parent[family]
        return family

    for a, b in (distances < CLONE_DISTANCE).nonzero().tolist():
        first, second = sorted((root(families[a]), root(families[b])))
        parent[second] = first
    members: dict[str, list[str]] = {}
    for family in parent:
        members.setdefault(root(family), []).append(family)
    return {family: "+".join(sorted(members[root(family)])) for family in parent}


def build_font_list(packages: tuple[str, ...] = tuple(FONT_PACKAGES)) -> list[FontFace]:
    """Scan the installed ``packages``: keep the text faces that draw A-Z a-z 0-9 and copy no earlier
    face (packages in the given order), and group them into split families."""
    candidates = []
    for package in packages:
        for path in _package_font_files(package):
            family, style = load_face(path, 32).getname()
            if not set(family.split()) & set(NON_TEXT_FAMILY_WORDS) and not missing_glyphs(path):
                candidates.append(FontFace(package, family.split()[0], f"{family} {style}", path))
    renders = torch.stack([render_face(face.path)[0] for face in candidates]).flatten(1).float() / 255
    distances = torch.cdist(renders, renders, p=1) / renders.shape[1]
    kept = _first_of_each_copy_set(distances)
    merged = _merge_clone_families([candidates[i].family for i in kept], distances[kept][:, kept])
    return [replace(candidates[i], family=merged[candidates[i].family]) for i in kept]


def write_font_list(faces: list[FontFace], path: str = FONT_LIST_PATH) -> None:
    """Write ``faces`` to ``path`` in the format read by :func:`read_font_list`."""
    with open(path, "w") as out:
        out.write("# package\tfamily\tface\tpath  (regenerate: python -m pml_metrix.app.datasets.make_font_list)\n")
        out.writelines(f"{f.package}\t{f.family}\t{f.face}\t{f.path}\n" for f in faces)
