import errno

import pytest
import torch

from pml_metrix.app.checkpoints import load_checkpoint, save_checkpoint

MINIMAL = {"config": {}, "models": {}}


def test_round_trip_loads_with_weights_only(tmp_path):
    path = tmp_path / "checkpoint.pth"
    state = {"epoch": 3, "config": {}, "models": {"trunk": torch.nn.Linear(2, 2).state_dict()},
             "history": [{"recall_at_1": 0.5}]}
    save_checkpoint(path, state)
    loaded = torch.load(path, weights_only=True)
    assert loaded["epoch"] == 3 and torch.equal(loaded["models"]["trunk"]["weight"], state["models"]["trunk"]["weight"])
    assert load_checkpoint(path)["history"] == [{"recall_at_1": 0.5}]
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pth"]  # no temporary file left


def test_truncated_or_foreign_checkpoints_are_refused(tmp_path):
    path = tmp_path / "checkpoint.pth"
    save_checkpoint(path, {"epoch": 1, **MINIMAL})
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
    save_checkpoint(path, {"epoch": 1, **MINIMAL})

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        save_checkpoint(path, {"epoch": 2, "bad": Unpicklable(), **MINIMAL})
    assert load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pth"]


def test_a_full_disk_is_one_clear_error_and_the_old_checkpoint_stays(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pth"
    save_checkpoint(path, {"epoch": 1, **MINIMAL})

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(OSError, match="no space left on the device writing .*checkpoint.pth \\(.*previous one, intact"):
        save_checkpoint(path, {"epoch": 2, **MINIMAL})
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 1 and [p.name for p in tmp_path.iterdir()] == ["checkpoint.pth"]


def test_the_temporary_files_of_a_killed_write_are_removed(tmp_path):
    (tmp_path / "checkpoint.pth.abc123.tmp").write_bytes(b"half a checkpoint")  # a SIGKILL mid-write
    save_checkpoint(tmp_path / "checkpoint.pth", {"epoch": 1, **MINIMAL})
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pth"]


def test_a_checkpoint_without_its_parts_is_refused(tmp_path):
    save_checkpoint(tmp_path / "checkpoint.pth", {"epoch": 1, "config": {}})
    with pytest.raises(ValueError, match="damaged pml_metrix checkpoint \\(no models\\)"):
        load_checkpoint(tmp_path / "checkpoint.pth")


def test_a_full_disk_that_torch_save_reports_as_a_runtime_error_is_the_same_clear_error(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pth"
    save_checkpoint(path, {"epoch": 1, **MINIMAL})

    def full(*args, **kwargs):  # as torch.save does: its zip writer fails while handling the OSError
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(OSError, match="no space left on the device writing .*checkpoint.pth \\(.*previous one, intact"):
        save_checkpoint(path, {"epoch": 2, **MINIMAL})
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 1 and [p.name for p in tmp_path.iterdir()] == ["checkpoint.pth"]
