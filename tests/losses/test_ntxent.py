"""MetrixNTXentLoss: PML's NTXentLoss bit for bit with binary labels (also with a miner's triplets,
which list a negative once per triplet); its soft form against the per-anchor reference; MixedBatch
and SoftPairs paths."""

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pytorch_metric_learning import distances, losses, miners, reducers

import pml_metrix
from tests import reference
from tests.losses.softmax_family import (
    check_bool_soft_pairs,
    check_matches_pml,
    check_mixed_batch,
    check_soft_against_reference,
    check_zero_without_negatives,
    soft_cases,
)
from tests.losses.test_exactness import assert_same, run

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(data=st.data())
def test_binary_labels_give_pml_s_ntxent_bit_for_bit(data):
    check_matches_pml(pml_metrix.MetrixNTXentLoss, losses.NTXentLoss, data)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_triplet_miner_s_repeated_pairs_count_as_in_pml(dtype):
    g = torch.Generator().manual_seed(0)
    embeddings, labels = torch.randn(32, 8, generator=g, dtype=dtype), torch.arange(8).repeat(4)
    triplets = miners.TripletMarginMiner(margin=1.0)(embeddings, labels)
    assert len(triplets[0]) > len(set(zip(triplets[0].tolist(), triplets[2].tolist())))  # repeated (a, n) pairs
    ours, theirs = pml_metrix.MetrixNTXentLoss(), losses.NTXentLoss()
    assert_same(run(ours, embeddings, labels, triplets), run(theirs, embeddings, labels, triplets), dtype, bitwise=True)


@SETTINGS
@given(soft=soft_cases())
def test_soft_form_matches_the_per_anchor_reference(soft):
    case, temperature, distance = soft
    loss_fn = pml_metrix.MetrixNTXentLoss(temperature=temperature, distance=distance)
    check_soft_against_reference(loss_fn, reference.ntxent_soft, case)


def test_large_logits_neither_overflow_nor_underflow():
    """Unnormalised L2 distances of about 100 over a temperature of 0.07: exponents near -1430,
    whose exp is 0 in float64 unless shifted (the ratios stay far from PML's small_val floor)."""
    g = torch.Generator().manual_seed(1)
    embeddings, refs = torch.randn(6, 4, generator=g, dtype=torch.float64), torch.randn(7, 4, generator=g, dtype=torch.float64)
    refs[:, 0] += 100.0
    soft_labels = torch.rand(6, 7, generator=g, dtype=torch.float64)
    soft_labels[:, :2] = 1.0
    loss_fn = pml_metrix.MetrixNTXentLoss(distance=distances.LpDistance(normalize_embeddings=False))
    check_soft_against_reference(loss_fn, reference.ntxent_soft, (embeddings, refs, soft_labels, None))


def test_a_pair_far_below_a_mostly_positive_negative_has_a_finite_gradient():
    """The pair (a, 0) lies 140 logits below (a, 1), whose negative weight 1 - y is 0.05: its numerator
    underflows in float32 while the negatives' sum, taken on their largest logit, is 0.05, and
    ``-log(ratio + small_val)`` had an inf gradient times the numerator's 0: NaN. Shifted by the
    largest weighted term the sum is at least 1, as in PML; in float64, where nothing underflows, the
    loss and gradients are the reference's."""
    refs, soft_labels = torch.tensor([[10.0, 0.0], [0.1, 0.0]]), torch.tensor([[0.99, 0.95]])
    loss_fn = pml_metrix.MetrixNTXentLoss(distance=distances.LpDistance(normalize_embeddings=False))
    embeddings = torch.zeros(1, 2, requires_grad=True)
    loss_fn(embeddings, None, pml_metrix.SoftPairs(refs, soft_labels)).backward()
    assert torch.isfinite(embeddings.grad).all()
    case = (torch.zeros(1, 2, dtype=torch.float64), refs.double(), soft_labels.double(), None)
    check_soft_against_reference(loss_fn, reference.ntxent_soft, case)


def test_a_mixup_miner_s_batch_on_unnormalised_distances_has_finite_gradients():
    g = torch.Generator().manual_seed(0)
    embeddings, labels = torch.randn(16, 8, generator=g).requires_grad_(), torch.arange(4).repeat_interleave(4)
    distance = distances.LpDistance(normalize_embeddings=False, power=2)
    loss_fn = pml_metrix.MetrixNTXentLoss(distance=distance, reducer=reducers.SumReducer())
    strategies = ("positive_negative", "anchor_negative", "negative_negative", "positive_positive")
    mixed_batch = pml_metrix.MixupMiner(seed=0, strategies=strategies, num_mixes=2)(embeddings, labels)
    loss = loss_fn(embeddings, labels, mixed_batch)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(embeddings.grad).all()


@pytest.mark.parametrize("distance", [distances.CosineSimilarity(), distances.LpDistance()], ids=["cosine", "l2"])
@pytest.mark.parametrize("shown_to", ["matching_anchors", "drawing_anchor"])
def test_a_mixup_miner_s_batch_gives_clean_plus_weighted_mixed(distance, shown_to):
    check_mixed_batch(pml_metrix.MetrixNTXentLoss, reference.ntxent_soft, distance, shown_to)


def test_soft_pairs_of_bool_labels_are_pml_s_loss_and_float_ones_agree():
    check_bool_soft_pairs(pml_metrix.MetrixNTXentLoss(), losses.NTXentLoss(), float_rel=1e-6)


def test_a_mix_is_a_positive_to_degree_y_and_a_negative_to_degree_1_minus_y():
    """One anchor, a positive p, a mix v of label y and a negative n: v's own term has weight y, and
    p's denominator holds v with weight 1 - y."""
    sim = torch.tensor([[0.9, 0.4, -0.2]], dtype=torch.float64)  # p, v, n
    y = 0.25
    soft_labels = torch.tensor([[1.0, y, 0.0]], dtype=torch.float64)
    losses_, (anchors, refs) = pml_metrix.functional.ntxent_loss(sim, soft_labels, temperature=0.5)
    z = sim[0] / 0.5
    expected_p = -(z[0] - torch.log(z[0].exp() + (1 - y) * z[1].exp() + z[2].exp()))
    expected_v = -y * (z[1] - torch.log(z[1].exp() + z[2].exp()))
    assert refs.tolist() == [0, 1]
    assert losses_.tolist() == pytest.approx([expected_p.item(), expected_v.item()], rel=1e-14)


def test_no_negative_pair_gives_pml_s_zero_loss():
    check_zero_without_negatives(pml_metrix.MetrixNTXentLoss())
    assert isinstance(pml_metrix.MetrixNTXentLoss(), losses.NTXentLoss)
    assert pml_metrix.MetrixNTXentLoss().temperature == losses.NTXentLoss().temperature
