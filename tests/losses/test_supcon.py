"""MetrixSupConLoss: PML's SupConLoss bit for bit with binary labels; its soft form (weighted
positives) against the per-anchor reference; MixedBatch and SoftPairs paths."""

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pytorch_metric_learning import distances, losses

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

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(data=st.data())
def test_binary_labels_give_pml_s_supcon_bit_for_bit(data):
    check_matches_pml(pml_metrix.MetrixSupConLoss, losses.SupConLoss, data)


@SETTINGS
@given(soft=soft_cases())
def test_soft_form_matches_the_per_anchor_reference(soft):
    case, temperature, distance = soft
    loss_fn = pml_metrix.MetrixSupConLoss(temperature=temperature, distance=distance)
    check_soft_against_reference(loss_fn, reference.supcon_soft, case)


@pytest.mark.parametrize("distance", [distances.CosineSimilarity(), distances.LpDistance()], ids=["cosine", "l2"])
@pytest.mark.parametrize("shown_to", ["matching_anchors", "drawing_anchor"])
def test_a_mixup_miner_s_batch_gives_clean_plus_weighted_mixed(distance, shown_to):
    check_mixed_batch(pml_metrix.MetrixSupConLoss, reference.supcon_soft, distance, shown_to)


def test_soft_pairs_of_bool_labels_are_pml_s_loss_and_float_ones_agree():
    check_bool_soft_pairs(pml_metrix.MetrixSupConLoss(), losses.SupConLoss(), float_rel=0)


def test_a_positive_of_weight_lam_and_one_of_weight_1_minus_lam_is_i_mix_s_loss():
    """One anchor, references i and j among negatives: y = lam at i, 1 - lam at j gives
    lam CE(i) + (1 - lam) CE(j) over the softmax of z = s / t."""
    g = torch.Generator().manual_seed(3)
    anchor, refs = torch.randn(1, 4, generator=g, dtype=torch.float64), torch.randn(5, 4, generator=g, dtype=torch.float64)
    lam = 0.3
    soft_labels = torch.tensor([[lam, 1 - lam, 0.0, 0.0, 0.0]], dtype=torch.float64)
    loss_fn = pml_metrix.MetrixSupConLoss(temperature=0.2)
    log_softmax = torch.log_softmax(loss_fn.distance(anchor, refs) / 0.2, dim=1)[0]
    i_mix = -(lam * log_softmax[0] + (1 - lam) * log_softmax[1])
    assert loss_fn(anchor, None, pml_metrix.SoftPairs(refs, soft_labels)).item() == pytest.approx(i_mix.item(), rel=1e-14)


def test_no_negative_pair_gives_pml_s_zero_loss():
    check_zero_without_negatives(pml_metrix.MetrixSupConLoss())


def test_temperature_must_be_a_positive_number():
    for temperature in (0.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match="temperature"):
            pml_metrix.MetrixSupConLoss(temperature=temperature)
    assert isinstance(pml_metrix.MetrixSupConLoss(), losses.SupConLoss)
    assert pml_metrix.MetrixSupConLoss().temperature == losses.SupConLoss().temperature
