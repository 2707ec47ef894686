import pytest
import torch

from pml_metrix.app.datasets import get_dataset
from pml_metrix.app.datasets.pml_benchmarks import load_benchmark

from .conftest import write_jpeg

CUB_CLASSES = (1, 2, 3, 4, 5, 101, 102, 103)
CARS_CLASSES = (1, 2, 3, 50, 98, 99, 100, 196)
SOP_TRAIN_CLASSES, SOP_TEST_CLASSES = (1, 2, 3, 4, 5), (11319, 11320, 11321)


def write_cub(root, per_class=2, classes=CUB_CLASSES):
    """CUB_200_2011 layout: images.txt ("id path"), image_class_labels.txt ("id class"), images/."""
    base = root / "CUB_200_2011"
    rows = [(c, f"{c:03d}.Bird_{c}/Bird_{c}_{k:04d}_{c}.jpg") for c in classes for k in range(per_class)]
    base.mkdir(parents=True)
    (base / "images.txt").write_text("".join(f"{i} {p}\n" for i, (_, p) in enumerate(rows, 1)))
    (base / "image_class_labels.txt").write_text("".join(f"{i} {c}\n" for i, (c, _) in enumerate(rows, 1)))
    for i, (_, path) in enumerate(rows):
        write_jpeg(base / "images" / path, seed=i, mode="L" if i == 0 else "RGB")  # CUB has gray images
    return len(rows)


def write_cars(root, per_class=2, classes=CARS_CLASSES):
    """Kaggle Cars196 layout: names.csv, anno_{train,test}.csv ("file,x1,y1,x2,y2,class"),
    car_data/car_data/{train,test}/<class name, / as ->/file; each class in both original halves."""
    names = [f"Make Model {i} 2012" for i in range(1, 197)]
    names[2] = "Ram C/V Cargo Van Minivan 2012"
    root.mkdir(parents=True, exist_ok=True)
    (root / "names.csv").write_text("".join(f"{name}\n" for name in names))
    counter = 0
    for half in ("train", "test"):
        lines = []
        for c in classes:
            for _ in range(per_class):
                counter += 1
                lines.append(f"{counter:05d}.jpg,1,2,30,20,{c}\n")
                folder = names[c - 1].replace("/", "-")
                write_jpeg(root / "car_data" / "car_data" / half / folder / f"{counter:05d}.jpg", seed=counter)
        (root / f"anno_{half}.csv").write_text("".join(lines))
    return counter


def write_sop(root, per_class=2, classes=(SOP_TRAIN_CLASSES, SOP_TEST_CLASSES)):
    """Stanford_Online_Products layout: Ebay_{train,test}.txt ("image_id class_id super_class_id path")."""
    base = root / "Stanford_Online_Products"
    base.mkdir(parents=True)
    image_id = 0
    for half, half_classes in zip(("train", "test"), classes):
        lines = ["image_id class_id super_class_id path\n"]
        for c in half_classes:
            for k in range(per_class):
                image_id += 1
                path = f"bicycle_final/{c}_{k}.JPG"
                lines.append(f"{image_id} {c} 1 {path}\n")
                write_jpeg(base / path, seed=image_id)
        (base / f"Ebay_{half}.txt").write_text("".join(lines))


WRITERS = {"cub200": (write_cub, 5, 3), "cars196": (write_cars, 5, 3), "sop": (write_sop, 5, 3)}


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_standard_class_splits_with_seeded_val(name, tmp_path):
    writer, train_and_val_classes, test_classes = WRITERS[name]
    writer(tmp_path)
    splits = {split: load_benchmark(name, split, str(tmp_path), val_fraction=0.4) for split in ("train", "val", "test")}
    assert splits["train"].num_classes + splits["val"].num_classes == train_and_val_classes
    assert splits["val"].num_classes == 2 and splits["test"].num_classes == test_classes
    assert not set(splits["train"].class_ids) & set(splits["val"].class_ids)
    assert max(splits["train"].class_ids + splits["val"].class_ids) < min(splits["test"].class_ids)
    for dataset in splits.values():
        assert torch.equal(dataset.labels.unique(), torch.arange(dataset.num_classes))
    other_seed = load_benchmark(name, "val", str(tmp_path), val_fraction=0.4, seed=1).class_ids
    assert load_benchmark(name, "val", str(tmp_path), val_fraction=0.4, seed=0).class_ids == splits["val"].class_ids
    assert len(other_seed) == 2


def test_paper_transforms_and_gray_images(tmp_path):
    write_cub(tmp_path)
    train = load_benchmark("cub200", "train", str(tmp_path), val_fraction=0)
    test = load_benchmark("cub200", "test", str(tmp_path))
    image, label = train[0]  # the gray one
    assert image.shape == (3, 224, 224) and image.dtype == torch.float32 and label == 0
    assert torch.equal(test[0][0], test[0][0])  # eval transform: no randomness
    assert test[0][0].shape == (3, 224, 224)
    small = load_benchmark("cub200", "test", str(tmp_path), image_size=32)
    assert small[0][0].shape == (3, 32, 32)


@pytest.mark.parametrize("name", ["cub200", "inshop"])
def test_the_training_split_is_scored_without_its_augmentation(name, tmp_path):
    from tests.app.datasets.test_inshop import write_inshop

    write_cub(tmp_path) if name == "cub200" else write_inshop(tmp_path)
    torch.manual_seed(0)
    trained = get_dataset(name, "train", str(tmp_path), val_fraction=0, image_size=32)
    scored = get_dataset(name, "train", str(tmp_path), val_fraction=0, image_size=32, evaluation=True)
    assert torch.equal(trained.labels, scored.labels) and trained.paths == scored.paths
    assert not torch.equal(trained[1][0], trained[1][0])  # a random crop and flip at each read
    assert torch.equal(scored[1][0], scored[1][0])  # resized and centre-cropped, as val and test


def test_cars_class_names_with_slashes(tmp_path):
    write_cars(tmp_path)
    train = load_benchmark("cars196", "train", str(tmp_path), val_fraction=0)
    assert any("Ram C-V Cargo Van" in path for path in train.paths)
    assert train.num_classes == 5 and len(train) == 5 * 4


@pytest.mark.parametrize(
    "name, missing",
    [
        ("cub200", "CUB_200_2011/images.txt"),
        ("cars196", "names.csv"),
        ("sop", "Stanford_Online_Products/Ebay_train.txt"),
    ],
)
def test_missing_annotations_are_named_with_their_source(name, missing, tmp_path):
    with pytest.raises(FileNotFoundError, match=missing) as error:
        load_benchmark(name, "train", str(tmp_path))
    assert "get the dataset from" in str(error.value)


def test_missing_images_are_named(tmp_path):
    write_sop(tmp_path)
    (tmp_path / "Stanford_Online_Products" / "bicycle_final" / "11319_0.JPG").unlink()
    with pytest.raises(FileNotFoundError, match="11319_0.JPG"):
        load_benchmark("sop", "test", str(tmp_path))


def test_unknown_split(tmp_path):
    with pytest.raises(ValueError, match="train, val, test"):
        load_benchmark("sop", "query", str(tmp_path))


def test_empty_val_split_is_refused(tmp_path):
    write_cub(tmp_path)
    with pytest.raises(ValueError, match="split is empty"):
        load_benchmark("cub200", "val", str(tmp_path), val_fraction=0)
