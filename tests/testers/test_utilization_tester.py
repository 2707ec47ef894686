"""UtilizationTester inside a short PML training run: utilization reaches record-keeper's logs."""

import csv
import glob

import numpy as np
import pytest
import torch
from pytorch_metric_learning import losses, trainers
from pytorch_metric_learning.utils import logging_presets
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.data import TensorDataset

from pml_metrix.testers import MetrixAccuracyCalculator, UtilizationTester, utilization

CPU = torch.device("cpu")


def class_dataset(classes, per_class: int, seed: int) -> TensorDataset:
    """8-d inputs around one centre per class."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(10, 8, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor(classes).repeat_interleave(per_class)
    return TensorDataset(centres[labels] + 0.3 * torch.randn(len(labels), 8, generator=g), labels)


@pytest.fixture
def dataset_dict():
    return {"train": class_dataset([0, 1, 2, 3, 4, 5], 12, seed=1), "val": class_dataset([6, 7, 8, 9], 8, seed=2)}


def make_tester(**kwargs) -> UtilizationTester:
    kwargs.setdefault(
        "accuracy_calculator",
        MetrixAccuracyCalculator(exclude=("utilization", "NMI", "AMI"), k="max_bin_count", device=CPU),
    )
    return UtilizationTester(dataloader_num_workers=0, data_device=CPU, **kwargs)


def embeddings_of(tester, dataset, trunk):
    return tester.get_all_embeddings(dataset, trunk)[0]


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_training_run_logs_utilization_each_epoch(tmp_path, dataset_dict):
    torch.manual_seed(0)
    trunk = torch.nn.Linear(8, 4)
    record_keeper, _, _ = logging_presets.get_record_keeper(str(tmp_path / "csv"), str(tmp_path / "tensorboard"))
    hooks = logging_presets.get_hook_container(record_keeper)
    tester = make_tester(end_of_testing_hook=hooks.end_of_testing_hook)
    end_of_epoch_hook = hooks.end_of_epoch_hook(
        tester, dataset_dict, str(tmp_path / "models"), splits_to_eval=[("val", ["val"])]
    )
    trainer = trainers.MetricLossOnly(
        models={"trunk": trunk},
        optimizers={"trunk_optimizer": torch.optim.SGD(trunk.parameters(), lr=0.1)},
        batch_size=24,
        loss_funcs={"metric_loss": losses.MultiSimilarityLoss()},
        dataset=dataset_dict["train"],
        data_device=CPU,
        dataloader_num_workers=0,
        end_of_iteration_hook=hooks.end_of_iteration_hook,
        end_of_epoch_hook=end_of_epoch_hook,
    )
    trainer.train(num_epochs=2)

    [val_csv] = glob.glob(str(tmp_path / "csv" / "*VAL_vs_self*.csv"))
    rows = read_csv(val_csv)
    assert [int(row["epoch"]) for row in rows] == [1, 2]
    val, train = embeddings_of(tester, dataset_dict["val"], trunk), embeddings_of(tester, dataset_dict["train"], trunk)
    expected = utilization(val, train)
    assert float(rows[-1]["utilization_level0"]) == pytest.approx(expected, rel=1e-5)
    assert all(0 < float(row["utilization_level0"]) < 4 for row in rows)  # normalised: distances in (0, 4]
    assert {"recall_at_1_level0", "recall_at_8_level0", "alignment_level0", "uniformity_level0"} <= set(rows[0])

    events = EventAccumulator(glob.glob(str(tmp_path / "tensorboard"))[0])
    events.Reload()
    [tag] = [tag for tag in events.Tags()["scalars"] if "VAL_vs_self" in tag and tag.endswith("utilization_level0")]
    assert [event.step for event in events.Scalars(tag)] == [1, 2]


def test_mixed_embeddings_join_the_references(dataset_dict):
    trunk = torch.nn.Linear(8, 4)
    tester = make_tester()
    val_embeddings = embeddings_of(tester, dataset_dict["val"], trunk)
    without = tester.test(dataset_dict, 1, trunk, splits_to_eval=[("val", ["val"])])["val"]["utilization_level0"]
    assert without > 0.01
    tester.mixed_embeddings = val_embeddings  # every query now has itself among the references
    with_mixed = tester.test(dataset_dict, 2, trunk, splits_to_eval=[("val", ["val"])])["val"]["utilization_level0"]
    assert with_mixed == pytest.approx(0.0, abs=1e-6)
    tester.mixed_embeddings = None
    assert tester.test(dataset_dict, 3, trunk, splits_to_eval=[("val", ["val"])])["val"][
        "utilization_level0"
    ] == pytest.approx(without)


def test_default_splits_skip_utilization_for_the_train_split_itself(dataset_dict):
    accuracies = make_tester().test(dataset_dict, 1, torch.nn.Linear(8, 4))
    assert "utilization_level0" in accuracies["val"] and "precision_at_1_level0" in accuracies["val"]
    assert "utilization_level0" not in accuracies["train"] and "precision_at_1_level0" in accuracies["train"]


def test_avg_of_avgs_follows_the_calculator(dataset_dict):
    trunk = torch.nn.Linear(8, 4)
    calc = MetrixAccuracyCalculator(include=("recall_at_1",), avg_of_avgs=True, device=CPU)
    tester = make_tester(accuracy_calculator=calc)
    ours = tester.test(dataset_dict, 1, trunk, splits_to_eval=[("val", ["val"])])["val"]["utilization_level0"]
    val, train = embeddings_of(tester, dataset_dict["val"], trunk), embeddings_of(tester, dataset_dict["train"], trunk)
    nearest = ((val[:, None] - train[None]) ** 2).sum(-1).min(1).values
    per_class = [nearest[dataset_dict["val"].tensors[1] == c].mean().item() for c in (6, 7, 8, 9)]
    assert ours == pytest.approx(np.mean(per_class), rel=1e-5)


def test_a_plain_pml_calculator_works_too(dataset_dict):
    tester = make_tester(accuracy_calculator=AccuracyCalculator(include=("precision_at_1",), device=CPU))
    accuracies = tester.test(dataset_dict, 1, torch.nn.Linear(8, 4), splits_to_eval=[("val", ["val"])])["val"]
    assert set(accuracies) == {"epoch", "precision_at_1_level0", "utilization_level0"}


def test_every_label_level_gets_utilization(dataset_dict):
    fine_and_coarse = {
        name: TensorDataset(data.tensors[0], torch.stack([data.tensors[1], data.tensors[1] // 2], dim=1))
        for name, data in dataset_dict.items()
    }
    tester = make_tester(label_hierarchy_level="all")
    accuracies = tester.test(fine_and_coarse, 1, torch.nn.Linear(8, 4), splits_to_eval=[("val", ["val"])])["val"]
    assert accuracies["utilization_level0"] == accuracies["utilization_level1"] > 0
    assert accuracies["precision_at_1_level1"] >= accuracies["precision_at_1_level0"]


def test_bad_setups_raise_a_value_error(dataset_dict):
    with pytest.raises(ValueError, match="exclude=\\('utilization',\\)"):
        make_tester(accuracy_calculator=MetrixAccuracyCalculator(device=CPU))
    tester = make_tester()
    with pytest.raises(ValueError, match="no 'train' split"):
        tester.test({"val": dataset_dict["val"]}, 1, torch.nn.Linear(8, 4))
    with pytest.raises(ValueError, match="NaN"):
        tester.mixed_embeddings = torch.full((3, 4), float("nan"))
    tester.mixed_embeddings = torch.randn(3, 5)
    with pytest.raises(ValueError, match="dimension 5"):
        tester.test(dataset_dict, 1, torch.nn.Linear(8, 4), splits_to_eval=[("val", ["val"])])


def test_utilization_split_name_picks_the_reference_split(dataset_dict):
    trunk = torch.nn.Linear(8, 4)
    renamed = {"seen": dataset_dict["train"], "val": dataset_dict["val"]}
    tester = make_tester(utilization_split_name="seen")
    ours = tester.test(renamed, 1, trunk, splits_to_eval=[("val", ["val"])])["val"]["utilization_level0"]
    val, seen = embeddings_of(tester, renamed["val"], trunk), embeddings_of(tester, renamed["seen"], trunk)
    assert ours == pytest.approx(utilization(val, seen))


def test_label_sets_are_scored_as_one_level_as_the_calculator_scores_them(dataset_dict):
    """N x C label sets: the tester hands each split's whole label matrix to the calculator, once,
    and its accuracies equal the calculator's own on the tester's embeddings."""
    def with_label_sets(data):
        classes = data.tensors[1]
        sets = torch.stack([classes == c for c in range(10)] + [classes % 2 == 0, classes < 5], dim=1).to(torch.uint8)
        return TensorDataset(data.tensors[0], sets)

    sets = {name: with_label_sets(data) for name, data in dataset_dict.items()}
    calculator = MetrixAccuracyCalculator(recall_at_k=(1, 2), label_similarity="jaccard", exclude=("utilization",),
                                          k="max_bin_count", device=CPU)
    tester = make_tester(accuracy_calculator=calculator)
    trunk = torch.nn.Linear(8, 4)
    accuracies = tester.test(sets, 1, trunk, splits_to_eval=[("val", ["val"])])["val"]
    assert {"ndcg_at_1_level_sets", "ndcg_at_2_level_sets", "recall_at_1_level_sets", "utilization_level_sets"} <= set(accuracies)
    assert not [key for key in accuracies if "level0" in key or "level1" in key]  # no column scored alone
    embeddings, labels = tester.get_all_embeddings(sets["val"], trunk)
    assert labels.shape == (len(sets["val"]), 12)
    expected = calculator.get_accuracy(embeddings, labels, embeddings, labels, True)
    for metric, value in expected.items():
        assert accuracies[f"{metric}_level_sets"] == pytest.approx(value, rel=1e-12), metric
    assert 0 < accuracies["ndcg_at_1_level_sets"] <= 1
    # PML's hooks look a metric up by the tester's label_hierarchy_level (0 here, PML's default)
    hooks = logging_presets.HookContainer(record_keeper=None, primary_metric="ndcg_at_1")
    assert tester.label_hierarchy_level == 0
    assert hooks.get_curr_primary_metric(tester, "val") == accuracies["ndcg_at_1_level_sets"]
