"""Issue 13's variants against slow per-anchor references: the multi-similarity mixed term that only
attracts, a mix shown only to the anchor it was drawn for, one lam per batch, one strategy per step
with its own weight. Values from tests/reference.py (Python floats, one anchor at a time); gradients
from the same sums written with torch scalars, anchor by anchor."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pytorch_metric_learning.distances import CosineSimilarity, LpDistance

import pml_metrix
from tests import reference
from tests.strategies import pml_distances

ALPHA, BETA, BASE = 2.0, 10.0, 0.5


def as_lists(*tensors):
    return [t.tolist() for t in tensors]


def attract_by_anchor(mat, soft_labels, pair_mask):
    """The attracting mixed term, anchor by anchor with torch scalars (autograd through ``mat``)."""
    losses = []
    for a in range(mat.shape[0]):
        terms = [soft_labels[a, k] * torch.exp(-ALPHA * (mat[a, k] - BASE)) for k in range(mat.shape[1]) if pair_mask[a, k]]
        if terms:
            losses.append(torch.log1p(torch.stack(terms).sum()) / ALPHA)
    return torch.stack(losses).mean()


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), batch_size=st.integers(2, 16), num_mixed=st.integers(1, 12), distance=pml_distances())
def test_the_attracting_ms_term_matches_its_reference(seed, batch_size, num_mixed, distance):
    g = torch.Generator().manual_seed(seed)
    embeddings = torch.randn(batch_size, 5, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 3, (batch_size,), generator=g)
    source_index = torch.randint(0, batch_size, (num_mixed, 2), generator=g)
    lam = torch.rand(num_mixed, generator=g, dtype=torch.float64)
    mixed = lam[:, None] * embeddings[source_index[:, 0]] + (1 - lam[:, None]) * embeddings[source_index[:, 1]]
    pair_mask = torch.rand(batch_size, num_mixed, generator=g) < 0.7
    mb = pml_metrix.MixedBatch(mixed, source_index, lam, pair_mask)
    loss_fn = pml_metrix.MetrixMSLoss(alpha=ALPHA, beta=BETA, base=BASE, distance=distance, mixed_form="attract")
    soft = mb.soft_pairs(labels)
    mat = distance(embeddings, mixed)
    expected = reference.ms_attract_soft(*as_lists(mat, soft.soft_labels, pair_mask), ALPHA, BASE, distance.is_inverted)
    assert loss_fn(embeddings, None, soft).item() == pytest.approx(expected, rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("inverted", [True, False])
def test_the_attracting_ms_term_has_its_reference_s_gradients(inverted):
    distance = CosineSimilarity() if inverted else LpDistance()
    g = torch.Generator().manual_seed(1)
    embeddings = torch.randn(10, 5, generator=g, dtype=torch.float64, requires_grad=True)
    mixed = torch.randn(7, 5, generator=g, dtype=torch.float64, requires_grad=True)
    soft_labels = torch.rand(10, 7, generator=g, dtype=torch.float64)
    pair_mask = torch.rand(10, 7, generator=g) < 0.6
    loss_fn = pml_metrix.MetrixMSLoss(alpha=ALPHA, beta=BETA, base=BASE, distance=distance, mixed_form="attract")
    ours = torch.autograd.grad(loss_fn(embeddings, None, pml_metrix.SoftPairs(mixed, soft_labels, pair_mask)), (embeddings, mixed))
    mat = distance(embeddings, mixed)
    if not inverted:  # PML's margin convention: for a distance, s - base reads base - d
        mat = 2 * BASE - mat
    theirs = torch.autograd.grad(attract_by_anchor(mat, soft_labels, pair_mask), (embeddings, mixed))
    for mine, expected in zip(ours, theirs):
        torch.testing.assert_close(mine, expected, rtol=1e-10, atol=1e-12)


def eight_classes(seed=0):
    g = torch.Generator().manual_seed(seed)
    embeddings = torch.nn.functional.normalize(torch.randn(32, 6, generator=g, dtype=torch.float64), dim=1)
    return embeddings, torch.arange(8).repeat_interleave(4)


def reference_ms(mb, embeddings, labels, pair_mask):
    """The paper's MS mixed part of ``mb`` with the given mask, anchor by anchor."""
    soft = mb.soft_pairs(labels).soft_labels
    mat = embeddings @ torch.nn.functional.normalize(mb.embeddings, dim=1).T
    return reference.ms_soft(*as_lists(mat, soft, pair_mask), 2.0, 50.0, 0.5, True)


def test_a_mix_shown_only_to_its_drawing_anchor_reaches_that_anchor_alone():
    embeddings, labels = eight_classes()
    mb = pml_metrix.MixupMiner(seed=3, shown_to="drawing_anchor")(embeddings, labels)
    # per_anchor with one mix each: mix k was drawn for anchor k (every anchor has a positive and a negative)
    drawn_for = torch.arange(32)[:, None] == torch.arange(len(mb.lam))[None, :]
    loss_fn = pml_metrix.MetrixMSLoss(mix_weight=1.0)
    mixed = loss_fn(embeddings, labels, mb) - loss_fn(embeddings, labels)
    assert mixed.item() == pytest.approx(reference_ms(mb, embeddings, labels, drawn_for), rel=1e-10)


def test_one_lam_per_batch_is_the_mixed_part_with_that_lam_everywhere():
    embeddings, labels = eight_classes(1)
    mb = pml_metrix.MixupMiner(seed=4, lam_per="batch")(embeddings, labels)
    assert mb.lam.unique().numel() == 1
    loss_fn = pml_metrix.MetrixMSLoss(mix_weight=1.0)
    mixed = loss_fn(embeddings, labels, mb) - loss_fn(embeddings, labels)
    assert mixed.item() == pytest.approx(reference_ms(mb, embeddings, labels, mb.pair_mask), rel=1e-10)


def test_one_strategy_per_step_weighs_its_mixed_part_by_its_own_weight():
    embeddings, labels = eight_classes(2)
    miner = pml_metrix.MixupMiner(strategies=["positive_negative", "anchor_negative"], strategy_per_step=True, seed=5)
    weights = {"positive_negative": 0.4, "anchor_negative": 0.3}
    loss_fn = pml_metrix.MetrixMSLoss(mix_weight=weights)
    for _ in range(6):
        mb = miner(embeddings, labels)
        total = loss_fn(embeddings, labels, mb) - loss_fn(embeddings, labels)
        expected = weights[mb.strategy] * reference_ms(mb, embeddings, labels, mb.pair_mask)
        assert total.item() == pytest.approx(expected, rel=1e-10)
