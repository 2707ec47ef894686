"""Chance Recall@1 and the collapse test (pml_metrix.app.evaluation)."""

import math

import pytest
import torch

from pml_metrix.app.config import RunConfig
from pml_metrix.app.evaluation import COLLAPSE_CHANCE_FACTOR, chance_recall_at_1, collapsed, evaluate


def test_chance_recall_at_1_is_the_share_of_a_query_s_references_of_its_class():
    labels = torch.tensor([0, 0, 0, 1, 1, 2])  # class 2 has no other item: left out, as Recall@K leaves it out
    assert chance_recall_at_1(labels) == pytest.approx((3 * 2 / 5 + 2 * 1 / 5) / 5)
    queries, gallery = torch.tensor([0, 1]), torch.tensor([0, 0, 1, 2])
    assert chance_recall_at_1(queries, gallery) == pytest.approx((2 / 4 + 1 / 4) / 2)
    assert math.isnan(chance_recall_at_1(torch.tensor([0, 1])))


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({}, True),
        ({"alignment": 0.02}, False),  # positives apart: not one point
        ({"uniformity": -0.5}, False),  # spread out
        ({"recall_at_1": COLLAPSE_CHANCE_FACTOR * 0.2 + 0.01}, False),  # retrieves better than chance
        ({"alignment": math.nan}, False),  # not measured: no evidence
        ({"alignment": None}, True),  # label sets: no alignment, uniformity and Recall@1 decide
        ({"alignment": None, "uniformity": -0.5}, False),
    ],
)
def test_collapse_needs_one_point_and_chance_retrieval(changes, expected):
    metrics = {"alignment": 0.001, "uniformity": -0.001, "recall_at_1": 0.21, "chance_recall_at_1": 0.2, **changes}
    metrics = {name: value for name, value in metrics.items() if value is not None}
    assert collapsed(metrics) is expected


LABELS = torch.arange(5).repeat_interleave(40)


class Points(torch.utils.data.Dataset):
    """Items ``(features, label)``: 5 classes of 40 items."""

    def __init__(self, features):
        self.features, self.labels, self.num_classes = features, LABELS, 5

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        return self.features[index], int(self.labels[index])


def test_an_embedder_that_maps_everything_to_one_point_is_collapsed():
    generator = torch.Generator().manual_seed(0)
    config = RunConfig(recall_at_k=[1], eval_batch_size=50, device="cpu")
    apart = Points(torch.nn.functional.one_hot(LABELS).float() + 0.1 * torch.randn(200, 5, generator=generator))
    one_point = Points(torch.ones(200, 5) + 1e-4 * torch.randn(200, 5, generator=generator))
    scores = {}
    for name, data in (("apart", apart), ("one point", one_point)):
        scores[name] = evaluate(config, {"train": data, "test": data}, "test", None, 0, torch.nn.Identity(),
                                torch.nn.Identity(), torch.device("cpu"))
        assert scores[name]["chance_recall_at_1"] == pytest.approx(39 / 199)
    assert collapsed(scores["one point"]) and not collapsed(scores["apart"])


class LabelSetPoints(Points):
    """The same items, each labelled with a set: its class and label 5, which every item has."""

    def __init__(self, features):
        super().__init__(features)
        self.labels = torch.cat([torch.nn.functional.one_hot(LABELS, 6)[:, :5], torch.ones(200, 1, dtype=torch.long)], 1)

    def __getitem__(self, index):
        return self.features[index], self.labels[index]


def test_label_sets_are_scored_from_the_nearest_k_references_without_map_at_r():
    """Every pair shares a label: MAP@R's R would be every other item (a Q x Q x C table at scale);
    Recall@K and nDCG@K come from the max(K) nearest references, as from a search of them all."""
    from pml_metrix.testers import MetrixAccuracyCalculator

    generator = torch.Generator().manual_seed(1)
    features = torch.nn.functional.one_hot(LABELS).float() + 0.5 * torch.randn(200, 5, generator=generator)
    data = LabelSetPoints(features)
    config = RunConfig(recall_at_k=[1, 2], eval_batch_size=50, device="cpu")
    scores = evaluate(config, {"train": data, "test": data}, "test", None, 0, torch.nn.Identity(),
                      torch.nn.Identity(), torch.device("cpu"))
    assert "mean_average_precision_at_r" not in scores and "alignment" not in scores
    every_reference = MetrixAccuracyCalculator(recall_at_k=(1, 2), k=199, label_similarity="jaccard",
                                               include=("recall_at_1", "recall_at_2", "ndcg_at_1", "ndcg_at_2"))
    normalized = torch.nn.functional.normalize(features, dim=1)
    expected = every_reference.get_accuracy(normalized, data.labels, normalized, data.labels, ref_includes_query=True)
    for name, value in expected.items():
        assert scores[name] == pytest.approx(value, abs=1e-6), name
