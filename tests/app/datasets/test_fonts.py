import os

import pytest
import torch

from pml_metrix.app.datasets import fonts
from pml_metrix.app.datasets.font_list import FontFace, write_font_list
from pml_metrix.app.datasets.fonts import FontGlyphs, split_families
from pml_metrix.app.datasets.glyphs import GLYPHS


def make(split, font_list, cache_dir, image_size=16, **options):
    return FontGlyphs(split, image_size=image_size, font_list=font_list, cache_dir=str(cache_dir), **options)


def test_splits_are_disjoint_whole_families(small_font_list, tmp_path):
    path, faces = small_font_list
    family_of = {face.face: face.family for face in faces}
    datasets = {split: make(split, path, tmp_path / "cache") for split in ("train", "val", "test")}
    families = {split: {family_of[face.face] for face in d.faces} for split, d in datasets.items()}
    assert all(families.values())
    assert not families["train"] & families["val"] and not families["train"] & families["test"]
    assert not families["val"] & families["test"]
    assert sum(d.num_classes for d in datasets.values()) == len(faces)
    split_of = {family: split for split, names in families.items() for family in names}
    assert all(face in datasets[split_of[face.family]].faces for face in faces)


def test_split_follows_the_seed_and_face_shares():
    faces = [FontFace("p", f"family{k}", f"face{k}.{i}", f"/f{k}.{i}") for k in range(40) for i in range(k % 3 + 1)]
    assignment = split_families(faces, seed=0)
    assert assignment == split_families(faces, seed=0) and assignment != split_families(faces, seed=1)
    share = {split: sum(assignment[f.family] == split for f in faces) / len(faces) for split in ("val", "test")}
    assert share["test"] == pytest.approx(0.5, abs=0.05) and share["val"] == pytest.approx(0.1, abs=0.05)


def test_items_labels_and_one_clean_render_per_glyph_outside_train(small_font_list, tmp_path):
    path, _ = small_font_list
    train = make("train", path, tmp_path, jitter_copies=2)
    test = make("test", path, tmp_path, jitter_copies=2)
    assert len(train) == train.num_classes * len(GLYPHS) * 3
    assert len(test) == test.num_classes * len(GLYPHS)
    for dataset in (train, test):
        assert dataset.labels.dtype == torch.long
        assert torch.equal(dataset.labels.unique(), torch.arange(dataset.num_classes))
        image, label = dataset[len(dataset) - 1]
        assert image.shape == (1, 16, 16) and image.dtype == torch.float32 and label == dataset.num_classes - 1
        assert 0 <= image.min() and image.max() <= 1
    # test items of one face: each glyph once, all distinct renders
    first_face = test.images[test.labels == 0]
    assert len(torch.unique(first_face.flatten(1), dim=0)) == len(GLYPHS)
    # train: clean render then its jittered copies, glyph by glyph
    clean_train = make("train", path, tmp_path)
    assert torch.equal(train.images[::3], clean_train.images)


def test_renders_are_cached_and_reused(small_font_list, tmp_path, monkeypatch):
    path, _ = small_font_list
    first = make("test", path, tmp_path / "cache")
    assert len(os.listdir(tmp_path / "cache")) == 1

    def no_render(*args, **kwargs):
        raise AssertionError("rendered again instead of reading the cache")

    monkeypatch.setattr(fonts, "render_face", no_render)
    again = make("test", path, tmp_path / "cache")
    assert torch.equal(first.images, again.images) and torch.equal(first.labels, again.labels)
    with pytest.raises(AssertionError, match="rendered again"):
        make("test", path, tmp_path / "cache", image_size=20)


def test_renders_do_not_depend_on_the_cache(small_font_list, tmp_path):
    path, _ = small_font_list
    assert torch.equal(make("val", path, tmp_path / "a").images, make("val", path, tmp_path / "b").images)


def test_missing_fonts_warn_and_the_rest_run(small_font_list, tmp_path):
    _, faces = small_font_list
    test_family = next(f for f, s in split_families(faces).items() if s == "test")
    absent = FontFace("fonts-nowhere", test_family, "Nowhere Regular", "/nonexistent/Nowhere.ttf")
    path = tmp_path / "with_missing.txt"
    write_font_list([*faces, absent], str(path))
    with pytest.warns(UserWarning, match="Nowhere Regular"):
        dataset = make("test", str(path), tmp_path)
    assert "Nowhere Regular" not in [face.face for face in dataset.faces]
    assert dataset.num_classes == sum(split_families(faces)[f.family] == "test" for f in faces)


def test_bad_split_and_missing_list(tmp_path):
    with pytest.raises(ValueError, match="train, val, test"):
        FontGlyphs("query")
    with pytest.raises(FileNotFoundError, match="font_list"):
        FontGlyphs("train", font_list=str(tmp_path / "none.txt"))


def test_train_fraction_keeps_nested_whole_families_and_leaves_val_and_test(small_font_list, tmp_path):
    path, faces = small_font_list
    family_of = {face.face: face.family for face in faces}
    full = make("train", path, tmp_path)
    half = make("train", path, tmp_path, train_fraction=0.5)
    quarter = make("train", path, tmp_path, train_fraction=0.25)
    names = {name: [face.face for face in d.faces] for name, d in (("full", full), ("half", half), ("quarter", quarter))}
    assert 0 < len(names["quarter"]) <= len(names["half"]) < len(names["full"])
    assert set(names["quarter"]) <= set(names["half"]) <= set(names["full"])
    # whole families: a kept face's family is kept entirely
    kept_families = {family_of[name] for name in names["half"]}
    assert {name for name in names["full"] if family_of[name] in kept_families} == set(names["half"])
    assert torch.equal(half.labels.unique(), torch.arange(half.num_classes))
    for split in ("val", "test"):
        assert [f.face for f in make(split, path, tmp_path, train_fraction=0.25).faces] == [
            f.face for f in make(split, path, tmp_path).faces
        ]
    with pytest.raises(ValueError, match="train_fraction must lie in"):
        make("train", path, tmp_path, train_fraction=0)


def test_a_damaged_cache_file_is_rendered_again(small_font_list, tmp_path):
    path, _ = small_font_list
    first = make("test", path, tmp_path / "cache")
    (cached,) = os.listdir(tmp_path / "cache")
    (tmp_path / "cache" / cached).write_bytes(b"truncated")
    again = make("test", path, tmp_path / "cache")
    assert torch.equal(again.images, first.images)
    assert torch.load(tmp_path / "cache" / cached, weights_only=True).numel() > 0  # written anew
