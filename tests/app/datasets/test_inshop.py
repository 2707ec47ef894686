import pytest
import torch

from pml_metrix.app.datasets.inshop import load_inshop

from .conftest import write_jpeg

# item number: statuses of its images, as in the original (train items apart from query/gallery items)
ITEMS = {2: "train train", 3: "train train", 5: "train train", 7: "train train", 8: "train train",
         10: "query gallery gallery", 12: "query query gallery", 13: "gallery query"}


def write_inshop(root, archive_layout=False, items=ITEMS):
    """In-Shop layout: list_eval_partition.txt (count line, header, "image_name item_id status")
    and img/<GENDER>/<Category>/id_XXXXXXXX/NN_K_view.jpg; the archive keeps them in Eval/ and Img/."""
    rows = []
    for item, statuses in items.items():
        for k, status in enumerate(statuses.split()):
            rows.append((f"img/WOMEN/Dresses/id_{item:08d}/{k + 1:02d}_1_front.jpg", f"id_{item:08d}", status))
    partition = root / "Eval" if archive_layout else root
    images = root / "Img" if archive_layout else root
    partition.mkdir(parents=True, exist_ok=True)
    lines = [f"{len(rows)}\n", "image_name item_id evaluation_status\n"]
    lines += [f"{name}{' ' * 10}{item}{' ' * 5}{status}\n" for name, item, status in rows]
    (partition / "list_eval_partition.txt").write_text("".join(lines))
    for i, (name, _, _) in enumerate(rows):
        write_jpeg(images / name, seed=i)


@pytest.mark.parametrize("archive_layout", [False, True])
def test_query_and_gallery_share_labels(tmp_path, archive_layout):
    write_inshop(tmp_path, archive_layout)
    query, gallery = load_inshop("query", str(tmp_path)), load_inshop("gallery", str(tmp_path))
    assert len(query) == 4 and len(gallery) == 4
    assert query.num_classes == gallery.num_classes == 3
    assert query.class_ids == gallery.class_ids == [10, 12, 13]
    assert query.labels.tolist() == [0, 1, 1, 2] and gallery.labels.tolist() == [0, 0, 1, 2]
    image, label = query[0]
    assert image.shape == (3, 224, 224) and label == 0


def test_train_and_val_split_the_train_items(tmp_path):
    write_inshop(tmp_path)
    train, val = (load_inshop(split, str(tmp_path), val_fraction=0.4, seed=0) for split in ("train", "val"))
    assert sorted(train.class_ids + val.class_ids) == [2, 3, 5, 7, 8]
    assert val.num_classes == 2 and len(train) == 6
    assert torch.equal(train.labels.unique(), torch.arange(3))


def test_missing_partition_and_images_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="list_eval_partition.txt.*DeepFashion"):
        load_inshop("query", str(tmp_path))
    write_inshop(tmp_path)
    (tmp_path / "img" / "WOMEN" / "Dresses" / "id_00000010" / "01_1_front.jpg").unlink()
    with pytest.raises(FileNotFoundError, match="id_00000010/01_1_front.jpg"):
        load_inshop("query", str(tmp_path))


def test_unknown_split_lists_valid_ones(tmp_path):
    with pytest.raises(ValueError, match="train, val, query, gallery"):
        load_inshop("test", str(tmp_path))
