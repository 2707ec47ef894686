import pytest
import torch

from pml_metrix.app.datasets import get_dataset
from pml_metrix.app.datasets.font_attributes import (
    FaceAttributes,
    FontAttributes,
    query_font_attributes,
    read_font_attributes,
    weight_class,
    width_class,
    write_font_attributes,
)
from pml_metrix.app.datasets.font_list import read_font_list
from pml_metrix.app.datasets.fonts import FontGlyphs, split_families
from pml_metrix.app.datasets.glyphs import GLYPHS

# made rows: fontconfig's weight, slant, width and spacing (face k takes row k % 6), and their classes
MADE_ROWS = [
    (("40", "0", "100", "0"), ("weight:light", "slant:roman", "width:normal", "spacing:proportional")),
    (("80", "100", "75", "0"), ("weight:regular", "slant:italic", "width:condensed", "spacing:proportional")),
    (("47.5", "110", "100", "100"), ("weight:light", "slant:oblique", "width:normal", "spacing:monospace")),
    (("200", "0", "87", "90"), ("weight:bold", "slant:roman", "width:condensed", "spacing:dual")),
    (("210", "100", "125", "0"), ("weight:heavy", "slant:italic", "width:expanded", "spacing:proportional")),
    (("180", "0", "100", "110"), ("weight:bold", "slant:roman", "width:normal", "spacing:charcell")),
]


def write_attribute_table(path, faces, header="path\ttypeface\tweight\tslant\twidth\tspacing"):
    """A font attribute table for ``faces`` in the on-disk format (comment, header, tab-separated rows):
    typeface ``<first word of the face> Made``, the rest from ``MADE_ROWS``."""
    lines = ["# made for the tests", header]
    for k, face in enumerate(faces):
        lines.append("\t".join([face.path, f"{face.face.split()[0]} Made", *MADE_ROWS[k % len(MADE_ROWS)][0]]))
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def made_labels(k, face):
    return {f"family:{face.family}", f"typeface:{face.face.split()[0]} Made", *MADE_ROWS[k % len(MADE_ROWS)][1]}


def make(split, font_list, table, cache_dir, **options):
    return FontAttributes(split, attribute_table=table, font_list=font_list, image_size=8, cache_dir=str(cache_dir),
                          **options)


@pytest.mark.parametrize("weight, expected", [
    (0, "light"), (40, "light"), (55, "light"), (64.9, "light"), (65, "regular"), (75, "regular"), (80, "regular"),
    (100, "regular"), (139.9, "regular"), (140, "bold"), (180, "bold"), (200, "bold"), (202.4, "bold"),
    (202.5, "heavy"), (205, "heavy"), (210, "heavy"), (215, "heavy"),
])
def test_weight_classes_at_their_edges(weight, expected):
    assert weight_class(weight) == expected


@pytest.mark.parametrize("width, expected", [
    (50, "condensed"), (75, "condensed"), (87, "condensed"), (93.4, "condensed"), (93.5, "normal"), (100, "normal"),
    (106.4, "normal"), (106.5, "expanded"), (113, "expanded"), (200, "expanded"),
])
def test_width_classes_at_their_edges(width, expected):
    assert width_class(width) == expected


def test_items_are_glyphs_labelled_with_their_face_attribute_set(small_font_list, tmp_path):
    font_list, faces = small_font_list
    table = write_attribute_table(tmp_path / "attributes.tsv", faces)
    index_of = {face.path: k for k, face in enumerate(faces)}
    for split in ("train", "val", "test"):
        dataset = make(split, font_list, table, tmp_path / "cache")
        glyphs = FontGlyphs(split, font_list=font_list, image_size=8, cache_dir=str(tmp_path / "cache"))
        assert dataset.faces == glyphs.faces and torch.equal(dataset.face_labels, glyphs.labels)
        assert dataset.labels.shape == (len(dataset), dataset.num_classes) == (len(glyphs), len(dataset.label_names))
        assert dataset.labels.dtype == torch.uint8 and set(dataset.labels.unique().tolist()) == {0, 1}
        assert dataset.labels.sum(0).min() > 0  # every label is some face's
        for item in (0, len(dataset) - 1):
            image, label_set = dataset[item]
            assert torch.equal(image, glyphs[item][0]) and torch.equal(label_set, dataset.labels[item])
        for face_index, face in enumerate(dataset.faces):
            rows = dataset.labels[dataset.face_labels == face_index]
            assert len(rows) == len(GLYPHS) and (rows == rows[0]).all()
            names = {dataset.label_names[c] for c in rows[0].nonzero().flatten().tolist()}
            assert names == made_labels(index_of[face.path], face)


def test_families_are_disjoint_across_splits_as_in_fonts(small_font_list, tmp_path):
    font_list, faces = small_font_list
    table = write_attribute_table(tmp_path / "attributes.tsv", faces)
    datasets = {split: make(split, font_list, table, tmp_path) for split in ("train", "val", "test")}
    families = {split: {n for n in d.label_names if n.startswith("family:")} for split, d in datasets.items()}
    assert all(families.values())
    assert not families["train"] & families["val"] and not families["train"] & families["test"]
    assert not families["val"] & families["test"]
    split_of = split_families(faces)
    assert all(split_of[face.family] == split for split, d in datasets.items() for face in d.faces)
    # the columns: attributes in order, classes in scale order
    names = datasets["train"].label_names
    attributes = [name.split(":")[0] for name in names]
    assert attributes == sorted(attributes, key=["family", "typeface", "weight", "slant", "width", "spacing"].index)


def test_options_reach_the_glyphs_and_the_registry_builds_it(small_font_list, tmp_path):
    font_list, faces = small_font_list
    table = write_attribute_table(tmp_path / "attributes.tsv", faces)
    dataset = get_dataset("font_attributes", "train", None, image_size=8, jitter_copies=1, train_fraction=0.5,
                          font_list=font_list, attribute_table=table, cache_dir=str(tmp_path))
    glyphs = FontGlyphs("train", image_size=8, jitter_copies=1, train_fraction=0.5, font_list=font_list,
                        cache_dir=str(tmp_path))
    assert isinstance(dataset, FontAttributes) and torch.equal(dataset.images, glyphs.images)
    assert len(dataset) == len(glyphs.faces) * len(GLYPHS) * 2


def test_table_round_trips(small_font_list, tmp_path):
    _, faces = small_font_list
    table = read_font_attributes(write_attribute_table(tmp_path / "made.tsv", faces))
    assert table[faces[2].path] == FaceAttributes(f"{faces[2].face.split()[0]} Made", 47.5, 110, 100.0, 100)
    write_font_attributes(table, str(tmp_path / "again.tsv"))
    assert read_font_attributes(str(tmp_path / "again.tsv")) == table


def test_a_split_needs_rows_for_its_own_faces_only(small_font_list, tmp_path):
    font_list, faces = small_font_list
    split_of = split_families(faces)
    train_face = next(face for face in faces if split_of[face.family] == "train")
    without_train_face = write_attribute_table(tmp_path / "a.tsv", [face for face in faces if face != train_face])
    test = make("test", font_list, without_train_face, tmp_path)
    assert test.faces == [face for face in faces if split_of[face.family] == "test"]
    with pytest.raises(ValueError, match=f"no row for 1 face.*{train_face.face}.*regenerate"):
        make("train", font_list, without_train_face, tmp_path)


def test_committed_table_covers_the_committed_list_as_fontconfig_reports_it():
    faces = read_font_list()
    table = read_font_attributes()
    assert list(table) == [face.path for face in faces]
    sample = faces[::37]
    assert query_font_attributes(sample) == {face.path: table[face.path] for face in sample}
    dejavu_mono = table["/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf"]
    assert dejavu_mono == FaceAttributes("DejaVu Sans Mono", 200, 0, 100, 100)


def test_train_attributes_pick_the_labels_of_the_training_sets_alone(small_font_list, tmp_path):
    font_list, faces = small_font_list
    table = write_attribute_table(tmp_path / "attributes.tsv", faces)
    everything = make("train", font_list, table, tmp_path / "cache")
    families = make("train", font_list, table, tmp_path / "cache", train_attributes=["family"])
    assert families.label_names == [name for name in everything.label_names if name.startswith("family:")]
    assert (families.labels.sum(1) == 1).all()  # one label per item: the family as its class
    weight_slant = make("train", font_list, table, tmp_path / "cache", train_attributes=("weight", "slant"))
    assert {name.split(":")[0] for name in weight_slant.label_names} == {"weight", "slant"}
    kept = [everything.label_names.index(name) for name in weight_slant.label_names]
    assert torch.equal(weight_slant.labels, everything.labels[:, kept])
    val = make("val", font_list, table, tmp_path / "cache")
    assert torch.equal(make("val", font_list, table, tmp_path / "cache", train_attributes=["family"]).labels, val.labels)
    # scored, the training split has every attribute's labels, as val and test: a run trained on
    # families alone is graded as the others are
    scored = get_dataset("font_attributes", "train", attribute_table=str(table), font_list=font_list, image_size=8,
                         cache_dir=str(tmp_path / "cache"), train_attributes=["family"], evaluation=True)
    assert torch.equal(scored.labels, everything.labels) and scored.label_names == everything.label_names
    for bad in ("family", [], ["colour"], ["slant", "slant"]):
        with pytest.raises(ValueError, match="train_attributes must be a non-empty list of distinct names among family, "):
            make("train", font_list, table, tmp_path / "cache", train_attributes=bad)
