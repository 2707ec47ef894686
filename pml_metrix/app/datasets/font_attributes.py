"""Font attributes (multi-label): an item is a rendered glyph of :mod:`.fonts`, its label the set of its
face's attributes, one label per attribute:

- ``family``: the split family of the font list (``family:DejaVu+Hack``); families never straddle
  train / val / test, so test faces are unseen in training (the split of :class:`.FontGlyphs`);
- ``typeface``: fontconfig's family name, its first one (``typeface:DejaVu Sans``);
- ``weight``, from fontconfig's weight scale (thin 0, extralight 40, light 50, demilight 55, book 75,
  regular 80, medium 100, demibold 180, bold 200, extrabold 205, black 210): ``light`` below 65,
  ``regular`` in [65, 140), ``bold`` in [140, 202.5), ``heavy`` from 202.5 (each edge halfway between
  the named weights it separates);
- ``slant``: fontconfig's 0 ``roman``, 100 ``italic``, 110 ``oblique``;
- ``width``, from fontconfig's width scale (condensed 75, semicondensed 87, normal 100,
  semiexpanded 113, expanded 125): ``condensed`` below 93.5, ``normal`` in [93.5, 106.5),
  ``expanded`` from 106.5;
- ``spacing``: fontconfig's 0 ``proportional`` (fontconfig leaves it out), 90 ``dual``,
  100 ``monospace``, 110 ``charcell``.

The values are read from a committed table beside the font list, ``font_attributes.tsv``: a comment,
then a header line naming the columns ``path, typeface, weight, slant, width, spacing``, then one line
per font file with fontconfig's raw values, tab-separated. Training never runs fontconfig; on Debian
with fontconfig and the font packages installed, regenerate the table for the committed list with
``python -m pml_metrix.app.datasets.make_font_list --attributes-only``.
"""

import math
import os
import subprocess
from bisect import bisect_right
from dataclasses import astuple, dataclass
from typing import Any, Sequence

import torch
from torch.utils.data import Dataset

from .font_list import FONT_LIST_PATH, FontFace
from .fonts import FontGlyphs

FONT_ATTRIBUTES_PATH = os.path.join(os.path.dirname(__file__), "font_attributes.tsv")
REGENERATE = "python -m pml_metrix.app.datasets.make_font_list --attributes-only"
TABLE_COLUMNS = ("path", "typeface", "weight", "slant", "width", "spacing")
# fontconfig's values in TABLE_COLUMNS' order after the path (spacing is left out when proportional)
FC_QUERY_FORMAT = "%{family[0]}\t%{weight}\t%{slant}\t%{width}\t%{spacing:-0}"

ATTRIBUTES = ("family", "typeface", "weight", "slant", "width", "spacing")
WEIGHT_EDGES, WEIGHT_CLASSES = (65.0, 140.0, 202.5), ("light", "regular", "bold", "heavy")
WIDTH_EDGES, WIDTH_CLASSES = (93.5, 106.5), ("condensed", "normal", "expanded")
SLANT_CLASSES = {0: "roman", 100: "italic", 110: "oblique"}
SPACING_CLASSES = {0: "proportional", 90: "dual", 100: "monospace", 110: "charcell"}
CLASS_ORDER = {
    "weight": WEIGHT_CLASSES,
    "slant": tuple(SLANT_CLASSES.values()),
    "width": WIDTH_CLASSES,
    "spacing": tuple(SPACING_CLASSES.values()),
}


@dataclass(frozen=True)
class FaceAttributes:
    """fontconfig's raw values for one face (see the module's docstring for the scales)."""

    typeface: str
    weight: float
    slant: int
    width: float
    spacing: int


def weight_class(weight: float) -> str:
    """``light`` < 65 <= ``regular`` < 140 <= ``bold`` < 202.5 <= ``heavy`` on fontconfig's weight scale."""
    return WEIGHT_CLASSES[bisect_right(WEIGHT_EDGES, weight)]


def width_class(width: float) -> str:
    """``condensed`` < 93.5 <= ``normal`` < 106.5 <= ``expanded`` on fontconfig's width scale."""
    return WIDTH_CLASSES[bisect_right(WIDTH_EDGES, width)]


def face_label_set(face: FontFace, attributes: FaceAttributes) -> tuple[str, ...]:
    """The labels of ``face``, one per attribute of ``ATTRIBUTES``, as ``"attribute:class"`` strings."""
    return (
        f"family:{face.family}",
        f"typeface:{attributes.typeface}",
        f"weight:{weight_class(attributes.weight)}",
        f"slant:{SLANT_CLASSES[attributes.slant]}",
        f"width:{width_class(attributes.width)}",
        f"spacing:{SPACING_CLASSES[attributes.spacing]}",
    )


def _label_order(label: str) -> tuple[int, int, str]:
    """Labels by attribute (``ATTRIBUTES``' order), then by class: scale order, or by name for family and typeface."""
    attribute, value = label.split(":", 1)
    classes = CLASS_ORDER.get(attribute, ())
    return ATTRIBUTES.index(attribute), classes.index(value) if value in classes else 0, value


def _number(text: str, column: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ValueError(f"{where}: {column} must be a number, got {text!r}")
    return value


def _code(text: str, column: str, classes: dict[int, str], where: str) -> int:
    value = _number(text, column, where)
    if value not in classes:
        valid = ", ".join(f"{code} ({name})" for code, name in classes.items())
        raise ValueError(f"{where}: {column} must be one of {valid}, got {text}")
    return int(value)


def _parse_values(values: dict[str, str], where: str) -> FaceAttributes:
    """``values`` (column -> text, the columns of ``TABLE_COLUMNS`` after the path) as checked attributes."""
    return FaceAttributes(
        typeface=values["typeface"],
        weight=_number(values["weight"], "weight", where),
        slant=_code(values["slant"], "slant", SLANT_CLASSES, where),
        width=_number(values["width"], "width", where),
        spacing=_code(values["spacing"], "spacing", SPACING_CLASSES, where),
    )


def read_font_attributes(path: str = FONT_ATTRIBUTES_PATH) -> dict[str, FaceAttributes]:
    """The attributes of each font file in the table at ``path``, by file path; a malformed table is refused."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Font attribute table {path} not found; regenerate it with {REGENERATE}")
    with open(path) as file:
        lines = [(number, line.rstrip("\n")) for number, line in enumerate(file, 1) if not line.startswith("#")]
    header = lines[0][1].split("\t") if lines else []
    unknown = [column for column in header if column not in TABLE_COLUMNS]
    missing = [column for column in TABLE_COLUMNS if column not in header]
    repeated = sorted({column for column in header if header.count(column) > 1})
    wrong = [f"{what} column(s) {', '.join(columns)}"
             for what, columns in (("unknown", unknown), ("missing", missing), ("repeated", repeated)) if columns]
    if wrong:
        raise ValueError(f"{path}: its header line must name the columns {', '.join(TABLE_COLUMNS)}, tab-separated, "
                         f"got {'; '.join(wrong)}: regenerate the table with {REGENERATE}")
    table = {}
    for number, line in lines[1:]:
        where = f"{path} line {number}"
        fields = line.split("\t")
        if len(fields) != len(header):
            raise ValueError(f"{where}: expected {len(header)} tab-separated fields ({', '.join(header)}), "
                             f"got {len(fields)}")
        values = dict(zip(header, fields))
        if values["path"] in table:
            raise ValueError(f"{where}: {values['path']} has a row already; keep one row per font file")
        table[values["path"]] = _parse_values(values, where)
    return table


def write_font_attributes(table: dict[str, FaceAttributes], path: str = FONT_ATTRIBUTES_PATH) -> None:
    """Write ``table`` (font file path -> attributes) to ``path`` in the format of :func:`read_font_attributes`."""
    with open(path, "w") as out:
        out.write(f"# fontconfig's attributes of the faces of fonts.txt (regenerate: {REGENERATE})\n")
        out.write("\t".join(TABLE_COLUMNS) + "\n")
        for file, attributes in table.items():
            typeface, *numbers = astuple(attributes)
            out.write("\t".join([file, typeface, *(f"{value:g}" for value in numbers)]) + "\n")


def query_font_attributes(faces: list[FontFace]) -> dict[str, FaceAttributes]:
    """Each face's attributes as fontconfig's ``fc-query`` reports them (the file's first face), by file path."""
    table = {}
    for face in faces:
        try:
            query = subprocess.run(["fc-query", "--index", "0", "--format", FC_QUERY_FORMAT, face.path],
                                   capture_output=True, text=True, check=True)
        except FileNotFoundError as error:
            raise FileNotFoundError("fc-query not found: install fontconfig (apt-get install fontconfig)") from error
        values = dict(zip(TABLE_COLUMNS[1:], query.stdout.split("\t")))
        table[face.path] = _parse_values(values, f"fc-query {face.path}")
    return table


class FontAttributes(Dataset):
    """Rendered glyphs of the faces in one split of :class:`.FontGlyphs` (the same faces, renders and
    cache), each labelled with its face's attribute set.

    ``labels``: N x C uint8 multi-hot, ``labels[n, c] = 1`` when item n has label ``label_names[c]``
    (``"weight:bold"``); the C labels are those some face of the split carries, ordered by attribute
    (family, typeface, weight, slant, width, spacing), then by class. ``face_labels``: N LongTensor,
    the index of the item's face in ``faces`` (the class an m-per-class sampler draws by);
    ``num_classes`` = C. Items are ``(image float32 1 x S x S in [0, 1], label set uint8 C)``.
    ``train_attributes`` names the attributes whose labels make up the training split's sets (all of
    ``ATTRIBUTES`` by default; ``["family"]`` gives one label per item, the families as classes, the
    hard workaround of training on families alone); val and test keep every attribute, so that runs
    trained on other labels are scored alike. ``options`` go to
    :class:`.FontGlyphs` (image_size, jitter_copies, seed, val_fraction, test_fraction,
    train_fraction, cache_dir).
    """

    def __init__(
        self,
        split: str = "train",
        attribute_table: str = FONT_ATTRIBUTES_PATH,
        font_list: str = FONT_LIST_PATH,
        train_attributes: Sequence[str] = ATTRIBUTES,
        **options: Any,
    ):
        if isinstance(train_attributes, str) or not train_attributes or not set(train_attributes) <= set(ATTRIBUTES) \
                or len(set(train_attributes)) != len(train_attributes):
            raise ValueError(f"train_attributes must be a non-empty list of distinct names among "
                             f"{', '.join(ATTRIBUTES)}, got {train_attributes!r}")
        attributes = train_attributes if split == "train" else ATTRIBUTES
        table = read_font_attributes(attribute_table)
        self.glyphs = FontGlyphs(split, font_list=font_list, **options)
        self.faces, self.images, self.face_labels = self.glyphs.faces, self.glyphs.images, self.glyphs.labels
        missing = [face.face for face in self.faces if face.path not in table]
        if missing:
            raise ValueError(f"{attribute_table} has no row for {len(missing)} face(s) of the {split!r} split of "
                             f"{font_list} ({', '.join(missing)}): regenerate it with {REGENERATE}")
        label_sets = [[label for label in face_label_set(face, table[face.path]) if label.split(":", 1)[0] in attributes]
                      for face in self.faces]
        self.label_names = sorted({label for labels in label_sets for label in labels}, key=_label_order)
        column = {name: index for index, name in enumerate(self.label_names)}
        face_sets = torch.zeros(len(self.faces), len(self.label_names), dtype=torch.uint8)
        for face_index, labels in enumerate(label_sets):
            face_sets[face_index, [column[label] for label in labels]] = 1
        self.labels = face_sets[self.face_labels]
        self.num_classes = len(self.label_names)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, _ = self.glyphs[index]
        return image, self.labels[index]
