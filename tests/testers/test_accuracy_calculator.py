"""MetrixAccuracyCalculator: Recall@K and utilization against brute force, in both PML modes
(the query inside the reference set, and queries against a separate gallery as In-Shop)."""

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pytorch_metric_learning.utils.inference import FaissKNN

from pml_metrix.testers import MetrixAccuracyCalculator, alignment, uniformity

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
RETRIEVAL = ("recall_at_1", "recall_at_2", "recall_at_5", "recall_at_9", "recall_at_40", "precision_at_1")


def calculator(**kwargs) -> MetrixAccuracyCalculator:
    return MetrixAccuracyCalculator(recall_at_k=(1, 2, 5, 9, 40), device=torch.device("cpu"), **kwargs)


@st.composite
def retrieval_problems(draw):
    """(query, query_labels, reference, reference_labels, ref_includes_query): Gaussian or grid
    {-1, 0, 1}^d embeddings (exact ties), few classes with one-item ones, K above class sizes."""
    dim = draw(st.integers(1, 6))
    num_query, num_other = draw(st.integers(1, 30)), draw(st.integers(0, 30))
    ref_includes_query = draw(st.booleans())
    if not ref_includes_query and num_other == 0:
        num_other = 1
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    total = num_query + num_other
    if draw(st.booleans()):
        embeddings = torch.randint(-1, 2, (total, dim), generator=g).float()
    else:
        embeddings = torch.randn(total, dim, generator=g)
    num_classes = draw(st.integers(1, 8))
    labels = torch.tensor(draw(st.lists(st.integers(0, num_classes), min_size=total, max_size=total)))
    query, query_labels = embeddings[:num_query], labels[:num_query]
    if ref_includes_query:
        return query, query_labels, embeddings, labels, True
    return query, query_labels, embeddings[num_query:], labels[num_query:], False


def brute_recall_bounds(query, query_labels, reference, reference_labels, ref_includes_query, k, tol=1e-4):
    """Per-query Recall@k under the least and most favourable tie-breaking (distances within
    ``tol`` count as tied, for float32 rounding), and the mask of queries with a positive."""
    sq = ((query.double()[:, None] - reference.double()[None]) ** 2).sum(-1).numpy()
    same = (query_labels[:, None] == reference_labels[None]).numpy()
    lower, upper, has_positive = [], [], []
    for i in range(len(query)):
        candidate = np.ones(len(reference), dtype=bool)
        if ref_includes_query:
            candidate[i] = False
        dist, positive = sq[i][candidate], same[i][candidate]
        has_positive.append(positive.any())
        if not positive.any():
            lower.append(0.0), upper.append(0.0)
            continue
        k_avail = min(k, len(dist))
        kth = np.sort(dist)[k_avail - 1]
        surely_in = dist < kth - tol
        tied = ~surely_in & (dist <= kth + tol)
        upper.append(float((positive & (surely_in | tied)).any()))
        picked_from_ties = k_avail - surely_in.sum()
        lower.append(float((positive & surely_in).any() or (~positive & tied).sum() < picked_from_ties))
    return np.array(lower), np.array(upper), np.array(has_positive)


def per_class_mean(values: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean([values[labels == c].mean() for c in np.unique(labels)]))


@SETTINGS
@given(problem=retrieval_problems(), k=st.sampled_from([None, "max_bin_count", 40, 100]), avg_of_avgs=st.booleans())
def test_recall_at_k_matches_brute_force(problem, k, avg_of_avgs):
    query, query_labels, reference, reference_labels, ref_includes_query = problem
    accuracies = calculator(k=k, avg_of_avgs=avg_of_avgs, include=RETRIEVAL).get_accuracy(
        query, query_labels, reference, reference_labels, ref_includes_query
    )
    assert accuracies["recall_at_1"] == pytest.approx(accuracies["precision_at_1"], nan_ok=True)
    for recall_k in (1, 2, 5, 9, 40):
        lower, upper, counted = brute_recall_bounds(
            query, query_labels, reference, reference_labels, ref_includes_query, recall_k
        )
        ours = accuracies[f"recall_at_{recall_k}"]
        if not counted.any():
            assert np.isnan(ours)
            continue
        labels = query_labels.numpy()[counted]
        summarise = (lambda v: per_class_mean(v, labels)) if avg_of_avgs else np.mean
        assert summarise(lower[counted]) - 1e-9 <= ours <= summarise(upper[counted]) + 1e-9, (recall_k, ours)


@SETTINGS
@given(problem=retrieval_problems(), avg_of_avgs=st.booleans())
def test_utilization_matches_brute_force_in_both_modes(problem, avg_of_avgs):
    query, query_labels, reference, reference_labels, ref_includes_query = problem
    ours = calculator(avg_of_avgs=avg_of_avgs, include=("utilization",)).get_accuracy(
        query, query_labels, reference, reference_labels, ref_includes_query
    )["utilization"]
    others = reference[len(query) :] if ref_includes_query else reference
    if len(others) == 0:
        assert np.isnan(ours)
        return
    nearest = ((query.double()[:, None] - others.double()[None]) ** 2).sum(-1).min(1).values.numpy()
    expected = per_class_mean(nearest, query_labels.numpy()) if avg_of_avgs else nearest.mean()
    assert ours == pytest.approx(expected, abs=1e-4)


def test_perfectly_clustered_data_has_recall_one_and_zero_alignment():
    centres = 100 * torch.eye(6)
    labels = torch.arange(6).repeat_interleave(5)
    embeddings = centres[labels] + 0.01 * torch.randn(30, 6, generator=torch.Generator().manual_seed(0))
    accuracies = calculator(include=RETRIEVAL + ("alignment",)).get_accuracy(embeddings, labels)
    assert all(accuracies[name] == 1.0 for name in RETRIEVAL)
    assert accuracies["alignment"] == pytest.approx(0.0, abs=1e-6)


def test_utilization_is_zero_when_test_set_is_train_set_and_nan_without_other_references():
    test = torch.randn(200, 16)
    labels = torch.randint(0, 10, (200,))
    calc = calculator(include=("utilization",))
    assert calc.get_accuracy(test, labels, test.clone(), labels, False)["utilization"] == pytest.approx(0.0, abs=1e-5)
    assert np.isnan(calc.get_accuracy(test, labels)["utilization"])  # reference = query only
    train = torch.randn(300, 16)
    both = calc.get_accuracy(test, labels, torch.cat([test, train]), torch.cat([labels, labels, labels[:100]]), True)
    apart = calc.get_accuracy(test, labels, train, torch.zeros(300), False)
    assert both["utilization"] == pytest.approx(apart["utilization"])


def test_query_gallery_evaluation_as_in_shop():
    """Each query's item appears in the gallery, plus distractors; nothing is excluded as self."""
    g = torch.Generator().manual_seed(1)
    items = torch.randn(20, 8, generator=g)
    query_labels, gallery_labels = torch.arange(20), torch.arange(20).repeat(3)
    query = items + 0.05 * torch.randn(20, 8, generator=g)
    gallery = items[gallery_labels] + 0.05 * torch.randn(60, 8, generator=g)
    accuracies = calculator(include=("recall_at_1", "recall_at_2", "utilization")).get_accuracy(
        query, query_labels, gallery, gallery_labels, ref_includes_query=False
    )
    sq = ((query[:, None] - gallery[None]) ** 2).sum(-1)
    order = sq.argsort(dim=1)
    expected_at_1 = (gallery_labels[order[:, 0]] == query_labels).double().mean().item()
    assert accuracies["recall_at_1"] == pytest.approx(expected_at_1)
    assert accuracies["recall_at_2"] == pytest.approx(
        (gallery_labels[order[:, :2]] == query_labels[:, None]).any(1).double().mean().item()
    )
    assert accuracies["utilization"] == pytest.approx(sq.min(1).values.mean().item(), rel=1e-4)


def test_alignment_and_uniformity_use_the_query_set():
    g = torch.Generator().manual_seed(2)
    query, query_labels = torch.randn(50, 8, generator=g), torch.randint(0, 5, (50,), generator=g)
    reference = torch.randn(70, 8, generator=g)
    accuracies = calculator(include=("alignment", "uniformity")).get_accuracy(
        query, query_labels, reference, torch.randint(0, 5, (70,), generator=g), False
    )
    assert accuracies["alignment"] == pytest.approx(alignment(query, query_labels))
    assert accuracies["uniformity"] == pytest.approx(uniformity(query))


def test_metrics_without_knn_run_no_knn_search():
    def no_search(*args, **kwargs):
        raise AssertionError("k-NN search ran")

    calc = MetrixAccuracyCalculator(include=("utilization", "alignment", "uniformity"), knn_func=no_search)
    accuracies = calc.get_accuracy(torch.randn(20, 4), torch.randint(0, 3, (20,)), torch.randn(30, 4), torch.zeros(30))
    assert set(accuracies) == {"utilization", "alignment", "uniformity"}


def test_knn_gets_at_least_the_largest_k():
    requested = []

    class RecordingKNN(FaissKNN):
        def __call__(self, query, k, reference=None, ref_includes_query=False):
            requested.append(k)
            return super().__call__(query, k, reference, ref_includes_query)

    embeddings, labels = torch.randn(30, 4), torch.arange(10).repeat(3)  # max bin count 3: 2 besides self
    calc = MetrixAccuracyCalculator(recall_at_k=(1, 8), k="max_bin_count", knn_func=RecordingKNN())
    calc.get_accuracy(embeddings, labels, include=("recall_at_8",))
    calc.get_accuracy(embeddings, labels, include=("recall_at_1", "mean_average_precision_at_r"))
    assert requested == [8, 2]


def test_include_exclude_and_per_class_work_on_the_new_metrics():
    names = set(MetrixAccuracyCalculator(recall_at_k=(1, 10)).get_curr_metrics())
    assert {"recall_at_1", "recall_at_10", "utilization", "alignment", "uniformity", "precision_at_1"} <= names
    calc = MetrixAccuracyCalculator(recall_at_k=(1, 10), exclude=("recall_at_10", "NMI", "AMI"), return_per_class=True)
    accuracies = calc.get_accuracy(torch.randn(30, 4), torch.arange(3).repeat(10))
    assert "recall_at_10" not in accuracies
    assert isinstance(accuracies["recall_at_1"], list) and len(accuracies["recall_at_1"]) == 3


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"recall_at_k": 4}, "tuple of positive integers"),
        ({"recall_at_k": (1, 0)}, "positive integers"),
        ({"recall_at_k": (1, 2.0)}, "positive integers"),
        ({"recall_at_k": (4, 1, 4)}, "twice"),
        ({"recall_at_k": (1, 8), "k": 4}, "k >= 8"),
        ({"uniformity_max_items": 1}, "uniformity_max_items"),
        ({"label_comparison_fn": lambda a, b: a == b, "exclude": ("NMI", "AMI")}, "alignment"),
        ({"include": ("recall_at_3",)}, "recall_at_1"),
    ],
)
def test_bad_arguments_raise_a_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MetrixAccuracyCalculator(**kwargs)


def test_a_small_k_is_fine_when_the_larger_recalls_are_excluded():
    calc = MetrixAccuracyCalculator(recall_at_k=(1, 8), k=2, exclude=("recall_at_8",))
    accuracies = calc.get_accuracy(torch.randn(12, 3), torch.arange(4).repeat(3), include=("recall_at_1",))
    assert set(accuracies) == {"recall_at_1"}


def test_labels_of_two_dimensions_go_to_pml_with_a_comparison_of_the_caller_s_and_are_refused_without():
    """PML compares N x 2 labels with a label_comparison_fn of the caller's: so does this calculator;
    with PML's equality they are label sets, which need label_similarity. With label_similarity, labels
    are refused unless they are an N x C tensor (a NumPy array, one column)."""
    g = torch.Generator().manual_seed(0)
    query, labels = torch.randn(20, 4, generator=g), torch.randint(0, 3, (20, 2), generator=g)
    first_column = MetrixAccuracyCalculator(include=("precision_at_1",), label_comparison_fn=lambda x, y: x[..., 0] == y[..., 0])
    plain = MetrixAccuracyCalculator(include=("precision_at_1",))
    assert first_column.get_accuracy(query, labels) == plain.get_accuracy(query, labels[:, 0])
    with pytest.raises(ValueError, match=r"query_labels must be N class labels, one dimension, got shape \(20, 2\)"):
        plain.get_accuracy(query, labels)
    sets = MetrixAccuracyCalculator(include=("precision_at_1",), label_similarity="jaccard")
    with pytest.raises(ValueError, match="query_labels must be label sets, an N x C tensor of 0 and 1.*got ndarray"):
        sets.get_accuracy(query, (labels > 0).numpy())
