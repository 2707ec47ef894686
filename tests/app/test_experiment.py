"""A run picks its epoch on the validation split and reads the test split once, at the end."""

import json

import pytest
import torch

from pml_metrix.app import experiment, run_folder
from pml_metrix.app.checkpoints import load_checkpoint, load_weights
from pml_metrix.app.config import RunConfig

pytestmark = pytest.mark.slow  # trains models for several epochs


def tiny_config(font_list, output, **changes):
    values = dict(dataset_options={"font_list": font_list}, embedding_size=16, model_width=8, batch_size=24,
                  samples_per_class=4, epochs=4, output=str(output))
    return RunConfig(**{**values, **changes})


class Watched(torch.utils.data.Dataset):
    """A dataset that logs every item read into ``events``."""

    def __init__(self, dataset, events, split):
        self.dataset, self.events, self.split = dataset, events, split
        self.labels, self.num_classes = dataset.labels, dataset.num_classes

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        self.events.append(f"read {self.split}")
        return self.dataset[index]


def fingerprint_reads(dataset):
    """How many items :func:`~pml_metrix.app.run_folder.data_fingerprint` reads of ``dataset``."""
    log = []
    run_folder.data_fingerprint(Watched(dataset, log, "fingerprint"))
    return len(log)


@pytest.fixture
def events(monkeypatch):
    """What happened, in order: each split's item reads and each epoch's end."""
    log = []
    load_dataset = experiment.load_dataset
    monkeypatch.setattr(experiment, "load_dataset",
                        lambda config, split, **kwargs: Watched(load_dataset(config, split, **kwargs), log, split))
    end_of_epoch = experiment.Run.end_of_epoch

    def logged_end_of_epoch(self, trainer):
        log.append(f"end of epoch {trainer.epoch}")
        return end_of_epoch(self, trainer)

    monkeypatch.setattr(experiment.Run, "end_of_epoch", logged_end_of_epoch)
    return log


def test_the_epoch_is_picked_on_val_and_test_is_read_once_at_the_end(small_font_list, tmp_path, events):
    font_list, _ = small_font_list
    run = experiment.Run(tiny_config(font_list, tmp_path, mix_level="embedding", test_interval=1))
    result = run.train()
    test_reads = [i for i, event in enumerate(events) if event == "read test"]
    last_epoch = events.index("end of epoch 4")
    assert test_reads and min(test_reads) > last_epoch, "the test split was read before training ended"
    test = run.datasets["test"]  # evaluated once, then fingerprinted
    assert len(test_reads) == len(test) + fingerprint_reads(test), "the test split was read more than once"
    val_r1 = {metrics["epoch"]: metrics["recall_at_1"] for metrics in result.history}
    assert sorted(val_r1) == [1, 2, 3, 4]
    assert result.best_epoch == max(val_r1, key=val_r1.get)
    best = load_checkpoint(tmp_path / run_folder.BEST)
    assert best["epoch"] == result.best_epoch and best["history"][-1]["recall_at_1"] == max(val_r1.values())
    # the data it trained and selected on, which a resume checks
    assert best["train_data"] == run_folder.data_fingerprint(run.parts.train_set)
    assert best["select_data"] == run_folder.data_fingerprint(run.datasets["val"]) != best["train_data"]
    # the reported test metrics are the picked epoch's model's
    picked = experiment.Run(tiny_config(font_list, tmp_path / "again", mix_level="embedding"))
    load_weights(picked.parts.models, best)
    again = picked.evaluate("test", result.best_epoch)
    for name in ("recall_at_1", "recall_at_2", "mean_average_precision_at_r", "alignment", "uniformity"):
        assert again[name] == pytest.approx(result.final[name], abs=1e-6), name
    saved = json.loads((tmp_path / run_folder.RESULTS).read_text())
    assert saved["selection"] == {"split": "val", "metric": "recall_at_1", "best_epoch": result.best_epoch}
    assert saved["final"]["metrics"] == result.final and saved["history"] == result.history
    assert result.mixes_drawn > 0 and saved["mixes_drawn"] == result.mixes_drawn  # every step's mixes, counted


def test_patience_stops_training_as_pml_counts(small_font_list, tmp_path, monkeypatch):
    font_list, _ = small_font_list
    scores = iter([0.5, 0.6, 0.55, 0.58, 0.59, 0.9])  # best at epoch 2; epoch 4 - 2 > patience 1: stop
    monkeypatch.setattr(experiment.Run, "evaluate", lambda self, split, epoch, *args, **kwargs: {"recall_at_1": next(scores)})
    result = experiment.Run(tiny_config(font_list, tmp_path, epochs=6, patience=1)).train()
    assert [m["epoch"] for m in result.history] == [1, 2, 3, 4] and result.best_epoch == 2
    assert load_checkpoint(tmp_path / run_folder.CHECKPOINT)["epoch"] == 4


def test_without_selection_the_last_epoch_is_tested(small_font_list, tmp_path, events):
    font_list, _ = small_font_list
    result = experiment.Run(tiny_config(font_list, tmp_path, epochs=2, select_split="none")).train()
    assert result.history == [] and result.best_epoch == 2 and "read val" not in events
    assert result.mixes_drawn is None  # no mixing: nothing to count
    assert not (tmp_path / run_folder.BEST).exists()


def test_patience_is_counted_at_evaluated_epochs_only(small_font_list, tmp_path, monkeypatch):
    font_list, _ = small_font_list
    scores = iter([0.5, 0.4, 0.3, 0.9])  # epochs 3, 6, 9 evaluated; 6 - 3 > 2 at epoch 6, not at 4 or 5
    monkeypatch.setattr(experiment.Run, "evaluate", lambda self, split, epoch, *args, **kwargs: {"recall_at_1": next(scores)})
    result = experiment.Run(tiny_config(font_list, tmp_path, epochs=9, test_interval=3, patience=2)).train()
    assert [m["epoch"] for m in result.history] == [3, 6] and load_checkpoint(tmp_path / run_folder.CHECKPOINT)["epoch"] == 6


def test_resuming_a_finished_run_reads_it_back_and_refuses_other_endings(small_font_list, tmp_path, events):
    font_list, _ = small_font_list
    config = tiny_config(font_list, tmp_path, epochs=2)
    first = experiment.Run(config).train()
    fingerprinted = fingerprint_reads(experiment.Run(config).datasets["test"])  # the read back checks its data
    reads = events.count("read test")
    again = experiment.Run(config.replace(description="the same run")).train(resume=True)
    assert again.final == first.final and events.count("read test") == reads + fingerprinted  # not tested again
    with pytest.raises(ValueError, match="has ended with other settings \\(patience None there, 1 given\\)"):
        experiment.Run(config.replace(patience=1)).train(resume=True)
    more = experiment.Run(config.replace(epochs=3)).train(resume=True)  # more epochs continue it
    assert [m["epoch"] for m in more.history] == [1, 2, 3]


def test_an_ended_run_asked_for_another_evaluation_split_is_evaluated_there_without_training(small_font_list, tmp_path, events):
    font_list, _ = small_font_list
    config = tiny_config(font_list, tmp_path, epochs=2, eval_split="val")
    first = experiment.Run(config).train()
    assert "read test" not in events
    del events[:]
    on_test = experiment.Run(config.replace(eval_split="test")).train(resume=True)
    assert not any(event.startswith("end of epoch") for event in events), "an ended run trained again"
    run = experiment.Run(config.replace(output=str(tmp_path / "again"), eval_split="test"))
    test = run.datasets["test"]
    assert events.count("read test") == len(test) + fingerprint_reads(test), "the test split was not read exactly once"
    assert (on_test.history, on_test.best_epoch) == (first.history, first.best_epoch)
    load_weights(run.parts.models, load_checkpoint(tmp_path / run_folder.BEST))
    again = run.evaluate("test", first.best_epoch)
    for name in ("recall_at_1", "mean_average_precision_at_r", "alignment", "uniformity"):
        assert again[name] == pytest.approx(on_test.final[name], abs=1e-6), name
    saved = json.loads((tmp_path / run_folder.RESULTS).read_text())
    assert saved["final"]["split"] == "test" and saved["final"]["metrics"] == on_test.final
    del events[:]
    read_back = experiment.Run(config.replace(eval_split="test")).train(resume=True)
    assert read_back.final == on_test.final and events.count("read test") == fingerprint_reads(test)  # read back


def test_an_ended_run_whose_evaluation_data_changed_is_evaluated_again_without_training(small_font_list, tmp_path, monkeypatch):
    font_list, _ = small_font_list
    config = tiny_config(font_list, tmp_path, epochs=1)
    first = experiment.Run(config).train()
    saved = json.loads((tmp_path / run_folder.RESULTS).read_text())["final"]["data"]
    assert list(saved) == ["test"] and first.eval_data == saved

    class Brighter(torch.utils.data.Dataset):  # the test fonts' images changed under the same data_root
        def __init__(self, dataset):
            self.dataset, self.labels, self.num_classes = dataset, dataset.labels, dataset.num_classes

        def __len__(self):
            return len(self.dataset)

        def __getitem__(self, index):
            image, label = self.dataset[index]
            return image + 0.5, label

    load_dataset = experiment.load_dataset
    monkeypatch.setattr(experiment, "load_dataset",
                        lambda config, split, **kwargs: Brighter(load_dataset(config, split, **kwargs)) if split == "test"
                        else load_dataset(config, split, **kwargs))
    trained = []
    monkeypatch.setattr(experiment, "build_trainer", lambda *args, **kwargs: trained.append(args))
    again = experiment.Run(config).train(resume=True)
    assert not trained and (again.history, again.best_epoch) == (first.history, first.best_epoch)
    assert again.eval_data != first.eval_data and again.final != first.final  # the picked model on the data there now
    assert json.loads((tmp_path / run_folder.RESULTS).read_text())["final"]["data"] == again.eval_data


def test_the_trunk_stays_frozen_during_the_warm_up_and_trains_after_it(small_font_list, tmp_path, monkeypatch):
    font_list, _ = small_font_list
    run = experiment.Run(tiny_config(font_list, tmp_path, epochs=2, warmup_epochs=1, select_split="none"))
    snapshots = [{name: {k: v.clone() for k, v in m.state_dict().items()} for name, m in run.parts.models.items()}]
    end_of_epoch = experiment.Run.end_of_epoch

    def snapshot_end_of_epoch(self, trainer):
        snapshots.append({name: {k: v.clone() for k, v in m.state_dict().items()} for name, m in self.parts.models.items()})
        return end_of_epoch(self, trainer)

    monkeypatch.setattr(experiment.Run, "end_of_epoch", snapshot_end_of_epoch)
    run.train()
    assert len(snapshots) == 3

    def changed(model, before, after):
        return [k for k, v in snapshots[before][model].items() if not torch.equal(v, snapshots[after][model][k])]

    assert changed("embedder", 0, 1), "the embedder did not train during the warm-up"
    assert not changed("trunk", 0, 1), "the trunk trained during the warm-up"
    assert changed("trunk", 1, 2) and all(p.requires_grad for p in run.parts.models["trunk"].parameters())


def test_the_training_split_is_scored_in_its_evaluation_form_whatever_split_names_it(small_font_list, tmp_path):
    """font_attributes trained on families alone: every split it is scored on, the training split too,
    graded by every attribute; the training batches keep the families."""
    from tests.app.datasets.test_font_attributes import write_attribute_table

    font_list, faces = small_font_list
    table = write_attribute_table(tmp_path / "attributes.tsv", faces)
    options = {"font_list": font_list, "attribute_table": str(table), "train_attributes": ["family"]}
    for eval_split in ("test", "train"):
        run = experiment.Run(tiny_config(font_list, tmp_path / eval_split, dataset="font_attributes", dataset_options=options,
                                         eval_split=eval_split, recall_at_k=[1]))
        assert run.parts.train_set.labels.sum(1).eq(1).all()  # trained on one label per item, its family
        assert run.datasets["train"].labels.shape[1] > run.parts.train_set.labels.shape[1], eval_split
