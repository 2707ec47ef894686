import pytest
import torch

from pml_metrix.checkpoints import load_checkpoint, save_checkpoint


def test_round_trip_loads_with_weights_only(tmp_path):
    path = tmp_path / "checkpoint.pth"
    state = {"epoch": 3, "models": {"trunk": torch.nn.Linear(2, 2).state_dict()}, "history": [{"recall_at_1": 0.5}]}
    save_checkpoint(path, state)
    loaded = torch.load(path, weights_only=True)
    assert loaded["epoch"] == 3 and torch.equal(loaded["models"]["trunk"]["weight"], state["models"]["trunk"]["weight"])
    assert load_checkpoint(path)["history"] == [{"recall_at_1": 0.5}]
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pth"]  # no temporary file left


def test_truncated_or_foreign_checkpoints_are_refused(tmp_path):
    path = tmp_path / "checkpoint.pth"
    save_checkpoint(path, {"epoch": 1})
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        load_checkpoint(truncated)
    foreign = tmp_path / "foreign.pth"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(ValueError, match="not a pml_metrix checkpoint"):
        load_checkpoint(foreign)
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "missing.pth")


def test_a_failed_write_keeps_the_previous_good_checkpoint(tmp_path):
    path = tmp_path / "checkpoint.pth"
    save_checkpoint(path, {"epoch": 1})

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        save_checkpoint(path, {"epoch": 2, "bad": Unpicklable()})
    assert load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pth"]
