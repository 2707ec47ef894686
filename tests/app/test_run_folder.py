"""The run folder: one rule for "is this the same run?", a fingerprint of the training data, writes
whose every kill point resumes to an uninterrupted run's result, and a lock a second process meets."""

import itertools
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from record_keeper import RecordWriter

from pml_metrix.app import checkpoints, experiment, files
from pml_metrix.app.build import load_dataset
from pml_metrix.app.checkpoints import load_checkpoint
from pml_metrix.app.cli import main
from pml_metrix.app.config import ConfigError, RunConfig
from pml_metrix.app.run_folder import BEST, RunFolder, data_fingerprint

from .test_torchrun import write_tiny_fashion_mnist

REPO = Path(__file__).resolve().parents[2]


def tiny_fashion(tmp_path, **changes):
    """A baseline of 3 epochs of one batch on 20 Fashion-MNIST-like images of 5 classes, deterministic."""
    data = tmp_path / "data"
    values = dict(dataset="fashion_mnist", data_root=str(data) if data.is_dir() else write_tiny_fashion_mnist(data), image_size=16,
                  model_width=8, embedding_size=8, batch_size=16, samples_per_class=4, recall_at_k=[1], epochs=3,
                  deterministic=True, output=str(tmp_path / "run"))
    return RunConfig(**{**values, **changes})


def test_the_same_run_rule_allows_place_and_schedule_changes_only_where_they_keep_the_run(tmp_path):
    folder, config = RunFolder(tmp_path), RunConfig(output=str(tmp_path))
    saved = config.replace(output="elsewhere", description="first", eval_batch_size=7, device="cpu").to_dict()
    for ended in (False, True):
        folder.check_same_run(saved, config, ended)  # where files are and how fast: the same run
    with pytest.raises(ConfigError, match=r"trained with other settings \(num_workers 0 there, 2 given\)"):  # workers draw the transforms
        folder.check_same_run(saved, config.replace(num_workers=2), ended=False)
    folder.check_same_run(saved, config.replace(patience=2, test_interval=3), ended=False)
    with pytest.raises(ConfigError, match=r"has ended with other settings \(patience None there, 2 given, test_interval 1 there, 3 given\)"):
        folder.check_same_run(saved, config.replace(patience=2, test_interval=3), ended=True)
    with pytest.raises(ConfigError, match=r"trained with other settings \(lr 0.001 there, 0.1 given, seed 0 there, 3 given\)"):
        folder.check_same_run(saved, config.replace(lr=0.1, seed=3), ended=False)
    for ended in (False, True):  # a run without mixing: the mixing options act on nothing
        folder.check_same_run(saved, config.replace(mix_weight=0.2, strategies=["anchor_negative"]), ended)
    metrix = config.replace(mix_level="feature")
    older = {name: value for name, value in metrix.to_dict().items() if name != "negative_threshold"}  # before the option
    folder.check_same_run(older, metrix, ended=True)  # it had the default
    with pytest.raises(ConfigError, match=r"has ended with other settings \(negative_threshold 0.0 there, 0.25 given\)"):
        folder.check_same_run(older, metrix.replace(negative_threshold=0.25), ended=True)
    with pytest.raises(ConfigError, match=r"in .* was trained with other settings \(mix_weight 0.4 there, 0.2 given\)"):
        folder.check_same_run(metrix.to_dict(), metrix.replace(mix_weight=0.2), ended=False)


def test_overwrite_replaces_a_run_and_refuses_files_that_are_not_one(tmp_path):
    from pml_metrix.app.run_folder import CHECKPOINT, CONFIG

    def made(name, config_text=None, checkpoint=False):
        folder = tmp_path / name
        (folder / "logs").mkdir(parents=True)
        (folder / "logs" / "notes.txt").write_text("kept")
        if config_text is not None:
            (folder / CONFIG).write_text(config_text)
        if checkpoint:
            checkpoints.save_checkpoint(folder / CHECKPOINT, {"epoch": 1, "config": {}, "models": {}})
        return RunFolder(folder)

    run_config = tmp_path / "run.yaml"
    RunConfig(epochs=3).save(run_config)
    foreign = made("foreign", "a: 1\n")
    torch.save({"state_dict": {}}, foreign.path / CHECKPOINT)  # another program's checkpoint
    for folder in (made("notes"), made("study", "seeds: [0]\nvariants: {baseline: {}}\n"), made("other", "a: 1\n"), foreign):
        assert "no training run of pml_metrix" in folder.claim(overwrite=True)
        assert (folder.path / "logs" / "notes.txt").read_text() == "kept"
    damaged = made("damaged", run_config.read_text())
    (damaged.path / CHECKPOINT).write_bytes(b"truncated")  # a run's config beside it: a run's folder
    for folder in (made("started", run_config.read_text()), made("epoch", "seeds: [0]\n", checkpoint=True), damaged):
        assert folder.claim(overwrite=True) is None and not any(folder.path.iterdir())


def test_the_fingerprint_follows_the_items_and_labels_and_leaves_the_generators_alone(tmp_path):
    config = tiny_fashion(tmp_path)
    train = load_dataset(config, "train")
    state = torch.get_rng_state()
    assert data_fingerprint(train) == data_fingerprint(load_dataset(config, "train"))
    assert torch.equal(torch.get_rng_state(), state)
    train.images[0, 0, 0, 0] += 1  # one pixel of the first item
    changed = data_fingerprint(train)
    train.images[0, 0, 0, 0] -= 1
    train.labels[-1] = 0
    assert len({data_fingerprint(load_dataset(config, "train")), changed, data_fingerprint(train)}) == 3


class Killed(BaseException):
    """A kill at a write point (not an Exception: nothing on the way may catch it)."""


def write_points(monkeypatch, kill_at=None):
    """Count the run files' writes (atomic writes: config, checkpoints, results; record-keeper's logs)
    and raise Killed before the ``kill_at``-th; returns the counter."""
    count = itertools.count(1)
    calls = []

    def point(write):
        def counted(*args, **kwargs):
            calls.append(next(count))
            if calls[-1] == kill_at:
                raise Killed
            return write(*args, **kwargs)

        return counted

    monkeypatch.setattr(files, "write_atomically", point(files.write_atomically))
    monkeypatch.setattr(checkpoints, "write_atomically", point(checkpoints.write_atomically))
    monkeypatch.setattr(RecordWriter, "save_records", point(RecordWriter.save_records))
    return calls


def resumed(config):
    """What a user does after a kill: --resume, or --overwrite when no epoch finished."""
    run = experiment.Run(config)
    started = run.folder.started()
    return run.train(resume=started, overwrite=not started)


@pytest.mark.slow  # about 20 tiny runs
def test_a_kill_at_every_write_point_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch):
    selection = {1: 0.5, 2: 0.7, 3: 0.6}  # epoch 2 replaces epoch 1's best.pth; epoch 3 must not replace it
    evaluate = experiment.Run.evaluate

    def scored(self, split, epoch, *args, **kwargs):
        return {"recall_at_1": selection[epoch]} if split == "val" else evaluate(self, split, epoch, *args, **kwargs)

    monkeypatch.setattr(experiment.Run, "evaluate", scored)
    with monkeypatch.context() as counting:
        calls = write_points(counting)
        reference = experiment.Run(tiny_fashion(tmp_path)).train()
    best = load_checkpoint(tmp_path / "run" / BEST)
    assert reference.best_epoch == best["epoch"] == 2 and len(calls) >= 10
    for kill_at in range(1, len(calls) + 1):
        config = tiny_fashion(tmp_path, output=str(tmp_path / f"killed{kill_at}"))
        with monkeypatch.context() as killing:
            write_points(killing, kill_at)
            with pytest.raises(Killed):
                experiment.Run(config).train()
        result = resumed(config)
        assert (result.best_epoch, result.history, result.final) == (reference.best_epoch, reference.history, reference.final), kill_at
        kept = load_checkpoint(Path(config.output) / BEST)
        assert kept["epoch"] == 2 and all(torch.equal(kept["models"]["embedder"][k], v)
                                          for k, v in best["models"]["embedder"].items()), kill_at


def test_mixes_are_counted_across_a_resume_and_an_ended_run_is_evaluated_again_at_its_best_epoch(tmp_path, monkeypatch):
    selection = {1: 0.5, 2: 0.7, 3: 0.6}  # best epoch 2, last epoch 3
    evaluate = experiment.Run.evaluate

    def scored(self, split, epoch, *args, **kwargs):
        return {"recall_at_1": selection[epoch]} if split == "val" else evaluate(self, split, epoch, *args, **kwargs)

    monkeypatch.setattr(experiment.Run, "evaluate", scored)
    reference = experiment.Run(tiny_fashion(tmp_path, mix_level="embedding")).train()
    assert reference.mixes_drawn > 0 and reference.best_epoch == 2
    split_up = tiny_fashion(tmp_path, mix_level="embedding", output=str(tmp_path / "split"), epochs=2)
    experiment.Run(split_up).train()
    continued = experiment.Run(split_up.replace(epochs=3)).train(resume=True)
    assert continued.mixes_drawn == reference.mixes_drawn  # the count went on from the checkpoint's
    on_val = experiment.Run(tiny_fashion(tmp_path, mix_level="embedding", eval_split="val")).train(resume=True)
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pth")["epoch"] == 3  # nothing trained
    assert on_val.final["recall_at_1"] == selection[2]  # the best epoch's model, not the last one's
    assert (on_val.history, on_val.best_epoch, on_val.mixes_drawn) == (reference.history, 2, reference.mixes_drawn)


def test_a_run_records_the_arithmetic_of_each_process_that_trained_it(tmp_path, monkeypatch):
    from pml_metrix.app import reproducible

    config = tiny_fashion(tmp_path, epochs=2)
    (first,) = experiment.Run(config).train().trained_under
    assert reproducible.arithmetic_summary(first) == reproducible.arithmetic_summary(reproducible.arithmetic_record(torch.device("cpu")))
    other = {**first, "threads": first["threads"] + 1}
    monkeypatch.setattr(reproducible, "arithmetic_record", lambda device=None: other)
    resumed = experiment.Run(config.replace(epochs=3)).train(resume=True)  # another process trains epoch 3
    assert resumed.trained_under == [first, other] == load_checkpoint(tmp_path / "run" / "checkpoint.pth")["arithmetic"]
    assert experiment.Run(config.replace(epochs=4)).train(resume=True).trained_under == [first, other]  # no change
    assert json.loads((tmp_path / "run" / "results.json").read_text())["trained_under"] == [first, other]
    assert first["device"] == "cpu" and first["world_size"] == 1
    older = load_checkpoint(tmp_path / "run" / "checkpoint.pth")
    del older["arithmetic"]  # written before it was recorded: the earlier epochs' arithmetic is unknown
    checkpoints.save_checkpoint(tmp_path / "run" / "checkpoint.pth", older)
    (tmp_path / "run" / "results.json").unlink()
    assert experiment.Run(config.replace(epochs=5)).train(resume=True).trained_under == []


def test_a_run_resumed_with_fewer_epochs_evaluates_its_last_one(tmp_path, monkeypatch):
    """Killed after epoch 1 of 3 with an evaluation every 5th epoch (none yet), resumed to 1 epoch:
    epoch 1 is now the last, so it is evaluated, selected and tested (there was no best.pth)."""
    config = tiny_fashion(tmp_path, test_interval=5)
    save_epoch = RunFolder.save_epoch

    def killed_after_one(self, state, *args):
        save_epoch(self, state, *args)
        raise Killed

    with monkeypatch.context() as killing:
        killing.setattr(RunFolder, "save_epoch", killed_after_one)
        with pytest.raises(Killed):
            experiment.Run(config).train()
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pth")["history"] == []
    result = experiment.Run(config.replace(epochs=1)).train(resume=True)
    assert result.best_epoch == 1 and [m["epoch"] for m in result.history] == [1]
    assert load_checkpoint(tmp_path / "run" / BEST)["epoch"] == 1


# SIGINT's default handler set anew: a process started in the background inherits SIGINT ignored
LOCK_HOLDER = "import signal, sys, time; from pml_metrix.app.run_folder import RunFolder; " \
              "signal.signal(signal.SIGINT, signal.default_int_handler); " \
              "folder = RunFolder(sys.argv[1]); assert folder.lock() is None; print('locked', flush=True); time.sleep(600)"


@pytest.mark.slow  # a second process
@pytest.mark.parametrize("end", [signal.SIGKILL, signal.SIGINT])
def test_a_live_run_locks_its_folder_until_its_process_ends(tmp_path, capsys, end):
    config = tiny_fashion(tmp_path, epochs=1, deterministic=False)
    args = ["train", "--config", str(tmp_path / "config.yaml"), "--overwrite"]
    config.save(tmp_path / "config.yaml")
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, config.output], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        capsys.readouterr()
        assert main(args) == 2
        assert f"is in use by another pml-metrix run (pid {holder.pid})" in capsys.readouterr().err
        assert not (Path(config.output) / "checkpoint.pth").exists()
    finally:
        holder.send_signal(end)
        holder.wait(timeout=60)
    assert main(args) == 0 and (Path(config.output) / "checkpoint.pth").is_file()
