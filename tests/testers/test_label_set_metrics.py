"""MetrixAccuracyCalculator on label sets (multi-label retrieval): Recall@K and MAP@R with
"shares a label" as relevance, and nDCG@K with the set similarity as gain, against brute force."""

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pml_metrix.label_sets import LABEL_SIMILARITIES, get_label_similarity
from pml_metrix.testers import MetrixAccuracyCalculator

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KS = (1, 3, 8)


@st.composite
def label_set_problems(draw):
    """(query, query_sets, reference, reference_sets, ref_includes_query), Gaussian embeddings (no ties)."""
    num_query, num_other = draw(st.integers(1, 20)), draw(st.integers(0, 20))
    ref_includes_query = draw(st.booleans())
    if not ref_includes_query and num_other == 0:
        num_other = 1
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    total = num_query + num_other
    embeddings = torch.randn(total, draw(st.integers(1, 5)), generator=g)
    sets = torch.rand(total, draw(st.integers(1, 6)), generator=g) < draw(st.sampled_from([0.15, 0.4]))
    if not draw(st.booleans()) or sets.shape[1] == 1:  # else some items may have no label: gain 0, no relevant reference
        sets[:, 0] |= ~sets.any(1)  # (one column with a 0 is refused as a column of class labels)
    if ref_includes_query:
        return embeddings[:num_query], sets[:num_query], embeddings, sets, True
    return embeddings[:num_query], sets[:num_query], embeddings[num_query:], sets[num_query:], False


def ranked_references(query, reference, ref_includes_query):
    """Per query, the reference indices by L2 distance (the query's own row left out)."""
    order = []
    for q in range(len(query)):
        distances = ((reference - query[q]) ** 2).sum(1).tolist()
        order.append([r for r in sorted(range(len(reference)), key=distances.__getitem__) if not (ref_includes_query and r == q)])
    return order


def brute_force(problem, name):
    query, query_sets, reference, reference_sets, ref_includes_query = problem
    as_sets = lambda rows: [set(torch.where(row)[0].tolist()) for row in rows]
    qs, rs = as_sets(query_sets), as_sets(reference_sets)
    ratio = {
        "jaccard": lambda a, b: len(a & b) / len(a | b),
        "dice": lambda a, b: 2 * len(a & b) / (len(a) + len(b)),
        "cosine": lambda a, b: len(a & b) / math.sqrt(len(a) * len(b)),
        "shares_any": lambda a, b: float(bool(a & b)),
    }[name]
    similarity = lambda a, b: ratio(a, b) if a and b else 0.0  # an empty set shares no label
    recall, ndcg, map_at_r = {k: [] for k in KS}, {k: [] for k in KS}, []
    for q, ranked in enumerate(ranked_references(query, reference, ref_includes_query)):
        relevant = [bool(qs[q] & rs[r]) for r in ranked]
        if not any(relevant):  # lone: left out
            continue
        gains = [similarity(qs[q], rs[r]) for r in ranked]
        ideal = sorted(gains, reverse=True)
        for k in KS:
            recall[k].append(float(any(relevant[:k])))
            dcg = sum(g / math.log2(r + 2) for r, g in enumerate(gains[:k]))
            ndcg[k].append(dcg / sum(g / math.log2(r + 2) for r, g in enumerate(ideal[:k])))
        num_relevant = sum(relevant)
        hits = 0
        precisions = []
        for rank, is_relevant in enumerate(relevant[:num_relevant], start=1):
            hits += is_relevant
            precisions.append(hits / rank if is_relevant else 0.0)
        map_at_r.append(sum(precisions) / num_relevant)
    mean = lambda values: sum(values) / len(values) if values else float("nan")
    return {**{f"recall_at_{k}": mean(recall[k]) for k in KS}, **{f"ndcg_at_{k}": mean(ndcg[k]) for k in KS},
            "mean_average_precision_at_r": mean(map_at_r)}


@SETTINGS
@given(problem=label_set_problems(), name=st.sampled_from(sorted(LABEL_SIMILARITIES)))
def test_label_set_metrics_match_brute_force(problem, name):
    query, query_sets, reference, reference_sets, ref_includes_query = problem
    calculator = MetrixAccuracyCalculator(recall_at_k=KS, label_similarity=name, k=None, device=torch.device("cpu"),
                                          include=tuple(brute_force(problem, name)))
    reference_args = (None, None) if ref_includes_query and len(reference) == len(query) else (reference, reference_sets)
    got = calculator.get_accuracy(query, query_sets, *reference_args, ref_includes_query)
    expected = brute_force(problem, name)
    for metric, value in expected.items():
        if math.isnan(value):
            assert math.isnan(got[metric]), metric
        else:
            assert got[metric] == pytest.approx(value, rel=1e-6, abs=1e-9), metric


def test_one_label_per_item_gives_the_class_label_metrics():
    g = torch.Generator().manual_seed(0)
    embeddings, labels = torch.randn(40, 3, generator=g), torch.randint(0, 5, (40,), generator=g)
    metrics = ("precision_at_1", "mean_average_precision_at_r", "r_precision", "recall_at_1", "recall_at_3", "recall_at_8")
    by_class = MetrixAccuracyCalculator(recall_at_k=KS, include=metrics, k="max_bin_count", device=torch.device("cpu"))
    by_set = MetrixAccuracyCalculator(recall_at_k=KS, include=metrics, k="max_bin_count", label_similarity="jaccard",
                                      device=torch.device("cpu"))
    one_hot = torch.nn.functional.one_hot(labels)
    assert by_set.get_accuracy(embeddings, one_hot) == pytest.approx(by_class.get_accuracy(embeddings, labels))


def test_label_sets_leave_out_clustering_and_alignment_and_check_their_values():
    calculator = MetrixAccuracyCalculator(label_similarity="dice", device=torch.device("cpu"))
    current = calculator.get_curr_metrics()
    assert {"ndcg_at_1", "ndcg_at_8", "recall_at_1", "mean_average_precision_at_r"} <= set(current)
    assert not {"NMI", "AMI", "alignment"} & set(current)
    assert "ndcg_at_1" not in MetrixAccuracyCalculator(device=torch.device("cpu")).get_curr_metrics()
    with pytest.raises(ValueError, match="read as multi-hot label sets"):
        calculator.get_accuracy(torch.randn(4, 2), torch.tensor([[0, 2], [1, 0], [1, 1], [0, 1]]))
    with pytest.raises(ValueError, match="label_similarity must be one of"):
        MetrixAccuracyCalculator(label_similarity="overlap")
    assert get_label_similarity("dice")  # the gain of the nDCG metrics
