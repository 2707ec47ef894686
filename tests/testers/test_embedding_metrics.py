"""Utilization, alignment and uniformity against brute-force numpy over every pair."""

from unittest import mock

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pml_metrix.testers import alignment, alignment_uniformity, nearest_sq_distances, uniformity, utilization

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def embedding_sets(draw, min_items: int = 1, max_items: int = 40, max_dim: int = 12):
    """N x d embeddings: Gaussian, or on the grid {-1, 0, 1}^d (exact ties, duplicates, zero rows)."""
    num_items = draw(st.integers(min_items, max_items))
    dim = draw(st.integers(1, max_dim))
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    if draw(st.booleans()):
        return torch.randint(-1, 2, (num_items, dim), generator=g).to(dtype)
    return (draw(st.sampled_from([0.1, 1.0, 10.0])) * torch.randn(num_items, dim, generator=g, dtype=torch.float64)).to(
        dtype
    )


def draw_labels(draw, num_items: int) -> torch.Tensor:
    """Few classes, one-item classes among them."""
    return torch.tensor(draw(st.lists(st.integers(0, max(1, num_items // 3)), min_size=num_items, max_size=num_items)))


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows divided by their norm, as torch's F.normalize (eps 1e-12)."""
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def brute_sq_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)


def brute_alignment(x: np.ndarray, labels: np.ndarray) -> float:
    sq = brute_sq_distances(unit_rows(x), unit_rows(x))
    positive = (labels[:, None] == labels[None, :]) & ~np.eye(len(x), dtype=bool)
    return sq[positive].mean() if positive.any() else float("nan")


def brute_uniformity(x: np.ndarray) -> float:
    sq = brute_sq_distances(unit_rows(x), unit_rows(x))
    return float(np.log(np.exp(-2 * sq)[~np.eye(len(x), dtype=bool)].mean()))


def tolerance(dtype: torch.dtype, scale: float = 1.0) -> float:
    return (1e-4 if dtype == torch.float32 else 1e-10) * max(scale, 1.0)


@SETTINGS
@given(query=embedding_sets(), data=st.data())
def test_nearest_sq_distances_match_brute_force(query, data):
    dim = query.shape[1]
    sizes = data.draw(st.lists(st.integers(0, 30), min_size=1, max_size=3).filter(lambda s: sum(s) > 0))
    g = torch.Generator().manual_seed(data.draw(st.integers(0, 2**31 - 1)))
    references = [torch.randn(size, dim, generator=g, dtype=torch.float64).to(query.dtype) for size in sizes]
    if data.draw(st.booleans()):  # some queries duplicated among the references: distance 0
        references.append(query[: data.draw(st.integers(1, len(query)))])
    ours = nearest_sq_distances(query, *references)
    all_references = torch.cat(references).double().numpy()
    expected = brute_sq_distances(query.double().numpy(), all_references).min(axis=1)
    scale = float((query.double() ** 2).sum(1).max()) + float((all_references**2).sum(1).max())
    assert ours.dtype == torch.float64 and ours.shape == (len(query),)
    np.testing.assert_allclose(ours.numpy(), expected, rtol=0, atol=tolerance(torch.float32, scale))
    assert utilization(query, *references) == pytest.approx(expected.mean(), abs=tolerance(torch.float32, scale))


def test_utilization_of_a_set_by_itself_is_zero():
    train = torch.randn(500, 32)
    scale = (train**2).sum(1).mean().item()
    assert utilization(train, train) == pytest.approx(0.0, abs=1e-6 * scale)
    assert utilization(train[:100], train) == pytest.approx(0.0, abs=1e-6 * scale)


def test_mixed_references_count_for_the_queries_they_cover():
    g = torch.Generator().manual_seed(0)
    test, train = torch.randn(200, 16, generator=g), torch.randn(300, 16, generator=g)
    without = nearest_sq_distances(test, train)
    covered = nearest_sq_distances(test, train, test[:50])  # the first 50 queries have themselves as mixed items
    assert without[:50].min().item() > 1 and covered[:50].max().item() < 1e-5
    assert (covered <= without + 1e-5).all()


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: nearest_sq_distances(torch.randn(3, 4)), "no reference tensor after the query"),
        (lambda: nearest_sq_distances(torch.randn(3, 4), torch.randn(5, 3)), "dimension 3"),
        (lambda: nearest_sq_distances(torch.randn(3, 4), torch.zeros(0, 4)), "every reference tensor is empty"),
        (lambda: nearest_sq_distances(torch.full((3, 4), float("nan")), torch.randn(5, 4)), "NaN"),
        (lambda: nearest_sq_distances(torch.randn(3, 4), torch.randint(0, 3, (5, 4))), "floating-point"),
        (lambda: alignment(torch.randn(5, 4), torch.zeros(4)), r"shape \(5,\)"),
        (lambda: uniformity(torch.randn(5, 4), max_items=1), "max_items"),
    ],
)
def test_bad_input_raises_a_value_error_that_says_what_is_wrong(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@SETTINGS
@given(embeddings=embedding_sets(), data=st.data())
def test_alignment_matches_brute_force(embeddings, data):
    labels = draw_labels(data.draw, len(embeddings))
    ours = alignment(embeddings, labels)
    expected = brute_alignment(embeddings.double().numpy(), labels.numpy())
    if np.isnan(expected):
        assert np.isnan(ours)
    else:
        assert ours == pytest.approx(expected, abs=tolerance(embeddings.dtype))


def test_alignment_is_nan_without_positive_pairs_and_zero_for_collapsed_classes():
    assert np.isnan(alignment(torch.randn(4, 3), torch.arange(4)))
    collapsed = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 3.0], [0.0, 1.0]])  # one direction per class
    assert alignment(collapsed, torch.tensor([0, 0, 1, 1])) == pytest.approx(0.0, abs=1e-7)


@SETTINGS
@given(embeddings=embedding_sets(), block_entries=st.integers(1, 64))
def test_uniformity_matches_brute_force_in_any_block_size(embeddings, block_entries):
    with mock.patch.object(alignment_uniformity, "BLOCK_ENTRIES", block_entries):
        ours = uniformity(embeddings)
    if len(embeddings) < 2:
        assert np.isnan(ours)
    else:
        assert ours == pytest.approx(brute_uniformity(embeddings.double().numpy()), abs=tolerance(embeddings.dtype))


@SETTINGS
@given(
    embeddings=embedding_sets(min_items=2, max_items=60), max_items=st.integers(2, 20), seed=st.integers(0, 2**31 - 1)
)
def test_uniformity_above_max_items_is_exact_on_the_seeded_draw(embeddings, max_items, seed):
    ours = uniformity(embeddings, max_items=max_items, seed=seed)
    if len(embeddings) <= max_items:
        chosen = embeddings
    else:
        chosen = embeddings[torch.randperm(len(embeddings), generator=torch.Generator().manual_seed(seed))[:max_items]]
    assert ours == pytest.approx(brute_uniformity(chosen.double().numpy()), abs=tolerance(embeddings.dtype))
    assert uniformity(embeddings, max_items=max_items, seed=seed) == ours


def test_uniformity_bounds_a_collapsed_and_a_spread_set():
    assert uniformity(torch.ones(10, 3)) == pytest.approx(0.0, abs=1e-6)  # every pair at distance 0
    antipodal = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    assert uniformity(antipodal) == pytest.approx(-8.0)  # log exp(-2 * 4)
