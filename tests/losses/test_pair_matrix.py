"""A contrastive sub-loss given as a matrix of pair terms (PAIR_MATRIX) reaches every reducer as the
list of its kept pairs would: as the matrix itself where zero losses are left out anyway, as the list
otherwise."""

import copy

import pytest
import torch
from pytorch_metric_learning import reducers
from pytorch_metric_learning.reducers import MultipleReducers

import pml_metrix
from pml_metrix.losses import contrastive
from pml_metrix.losses.metrix_loss import PAIR_MATRIX, drops_zero_losses, reducible_pair_matrix

PAIR_REDUCERS = [  # (reducer, whether it takes the matrix itself)
    (reducers.AvgNonZeroReducer(), True),
    (reducers.ThresholdReducer(low=0.05, high=5.0), True),
    (reducers.AvgNonZeroReducer(collect_stats=True), False),  # its losses_size counts what it gets
    (reducers.ThresholdReducer(low=-1.0), False),
    (reducers.ThresholdReducer(high=0.5), False),
    (reducers.MeanReducer(), False),
    (reducers.SumReducer(), False),
    (reducers.PerAnchorReducer(), False),
    (reducers.ClassWeightedReducer(weights=torch.linspace(0.5, 1.5, 3)), False),
]


def reducer_id(case):
    reducer = case[0]
    return type(reducer).__name__ + ("-stats" if reducer.collect_stats else "")


def pair_matrix_case(seed, keep_fraction=0.6):
    g = torch.Generator().manual_seed(seed)
    kept = torch.rand(6, 8, generator=g) < keep_fraction
    kept[2] = False  # an anchor without kept pairs
    values = torch.rand(6, 8, generator=g, dtype=torch.float64) * (torch.rand(6, 8, generator=g) < 0.7)
    terms = (values * kept).requires_grad_()
    labels = torch.randint(0, 3, (6,), generator=g)
    return terms, kept, labels


@pytest.mark.parametrize("case", PAIR_REDUCERS, ids=reducer_id)
@pytest.mark.parametrize("seed", range(4))
def test_a_pair_matrix_reduces_as_the_list_of_its_kept_pairs(case, seed):
    """The value and gradient of the reducer over the kept pairs listed in row-major order, with their
    anchors, and the same stats."""
    reducer, takes_matrix = case
    terms, kept, labels = pair_matrix_case(seed)
    embeddings = torch.zeros(6, 2, dtype=torch.float64)
    info = reducible_pair_matrix(terms, kept, reducer)
    assert (info["losses"].shape == kept.shape) == takes_matrix
    ours, listed_reducer = copy.deepcopy(reducer), copy.deepcopy(reducer)
    value = ours({"loss": info}, embeddings, labels)
    (grad,) = torch.autograd.grad(value, terms)
    anchors, refs = kept.nonzero(as_tuple=True)
    listed = {"losses": terms[anchors, refs], "indices": anchors, "reduction_type": "element"}
    expected = listed_reducer({"loss": listed}, embeddings, labels)
    (expected_grad,) = torch.autograd.grad(expected, terms)
    torch.testing.assert_close(value, expected, rtol=1e-15, atol=0)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-15, atol=0)
    if reducer.collect_stats:
        assert ours.losses_size == listed_reducer.losses_size == len(anchors)
    assert drops_zero_losses(reducer) == (takes_matrix or reducer.collect_stats)


@pytest.mark.parametrize("case", PAIR_REDUCERS, ids=reducer_id)
def test_a_pair_matrix_without_kept_pairs_gives_the_zero_loss(case):
    info = reducible_pair_matrix(torch.zeros(3, 4, requires_grad=True), torch.zeros(3, 4, dtype=torch.bool), case[0])
    embeddings = torch.ones(3, 2, requires_grad=True)
    value = copy.deepcopy(case[0])({"loss": info}, embeddings, torch.zeros(3, dtype=torch.long))
    assert value.item() == 0.0 and value.requires_grad


def mixed_case():
    torch.manual_seed(0)
    embeddings = torch.randn(10, 4, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 3, (10,))
    source_index, lam = torch.randint(0, 10, (7, 2)), torch.rand(7, dtype=torch.float64)
    plan = pml_metrix.MixingPlan(source_index, lam, torch.rand(10, 7) < 0.6)
    return embeddings, labels, plan


def loss_and_grad(loss_fn, embeddings, labels, plan):
    embeddings.grad = None
    loss = loss_fn(embeddings, labels, plan.mixed_batch(plan.mix(embeddings)))
    loss.backward()
    return loss.detach(), embeddings.grad.clone()


@pytest.mark.parametrize("form", ["list", "matrix"])
@pytest.mark.parametrize("reducer", [reducers.MeanReducer(), reducers.AvgNonZeroReducer()], ids=lambda r: type(r).__name__)
def test_contrastive_mixed_part_reduces_its_kept_pairs(reducer, form, monkeypatch):
    """End to end, either form: each mixed sub-loss is the reducer over the terms of its kept pairs
    (soft labels written out from the plan); both forms give the same loss and gradients."""
    embeddings, labels, plan = mixed_case()
    loss_fn = pml_metrix.MetrixContrastiveLoss(pos_margin=0.2, neg_margin=1.5, reducer=copy.deepcopy(reducer))
    monkeypatch.setattr(contrastive, "PAIR_LIST_FRACTION", 1.0 if form == "list" else 0.0)
    loss, grad = loss_and_grad(loss_fn, embeddings, labels, plan)
    monkeypatch.setattr(contrastive, "PAIR_LIST_FRACTION", 0.0 if form == "list" else 1.0)
    other_loss, other_grad = loss_and_grad(loss_fn, embeddings, labels, plan)
    torch.testing.assert_close(loss, other_loss, rtol=1e-14, atol=0)
    torch.testing.assert_close(grad, other_grad, rtol=1e-12, atol=1e-15)

    (i, j), lam = plan.source_index.T, plan.lam
    same = labels[:, None] == labels[None, :]
    y = lam * same[:, i] + (1 - lam) * same[:, j]  # anchors x mixes
    d = loss_fn.distance(embeddings, plan.mix(embeddings)).detach()
    mask = plan.pair_mask
    pos = [y[a, k] * max(d[a, k] - 0.2, 0) for a, k in ((y > 0) & mask).nonzero().tolist()]
    neg = [(1 - y[a, k]) * max(1.5 - d[a, k], 0) for a, k in ((y < 1) & mask).nonzero().tolist()]
    if isinstance(reducer, reducers.AvgNonZeroReducer):
        pos, neg = [t for t in pos if t > 0], [t for t in neg if t > 0]
    expected = sum(pos) / max(len(pos), 1) + sum(neg) / max(len(neg), 1)
    clean = loss_fn(embeddings, labels).detach()
    assert (loss - clean).item() == pytest.approx(loss_fn.mix_weight * float(expected), rel=1e-10)


def test_reducers_outside_the_wrapping_get_pair_lists(monkeypatch):
    """DoNothingReducer (which PML keeps unwrapped) sees the mixed sub-losses as PML's element lists;
    reducers assigned after construction reduce the same value as the list form."""
    monkeypatch.setattr(contrastive, "PAIR_LIST_FRACTION", 0.0)
    embeddings, labels, plan = mixed_case()
    mixed = plan.mixed_batch(plan.mix(embeddings))
    loss_dict = pml_metrix.MetrixContrastiveLoss(reducer=reducers.DoNothingReducer())(embeddings, labels, mixed)
    for name in ("mixed_pos_loss", "mixed_neg_loss"):
        info = loss_dict[name]
        assert info["reduction_type"] == "element" and info["losses"].shape == info["indices"].shape
    loss_fn = pml_metrix.MetrixContrastiveLoss()
    names = loss_fn.sub_loss_names()
    loss_fn.reducer = MultipleReducers({name: reducers.AvgNonZeroReducer() for name in names})
    value = loss_fn(embeddings, labels, mixed)
    monkeypatch.setattr(contrastive, "PAIR_LIST_FRACTION", 1.0)
    assert torch.allclose(value, loss_fn(embeddings, labels, mixed), rtol=1e-14)
    assert PAIR_MATRIX not in {info["reduction_type"] for info in loss_dict.values()}


def test_inner_reducer_stats_count_the_kept_pairs(monkeypatch):
    monkeypatch.setattr(contrastive, "PAIR_LIST_FRACTION", 0.0)
    embeddings, labels, plan = mixed_case()
    loss_fn = pml_metrix.MetrixContrastiveLoss(reducer=reducers.AvgNonZeroReducer(collect_stats=True))
    loss_fn(embeddings, labels, plan.mixed_batch(plan.mix(embeddings)))
    soft = plan.mixed_batch(plan.mix(embeddings)).soft_pairs(labels, labels)
    kept_neg = (soft.soft_labels < 1) & soft.pair_mask
    assert loss_fn.reducer.reducers["mixed_neg_loss"].reducer.losses_size == int(kept_neg.sum())
