import copy

import pytest
import torch
from pytorch_metric_learning import reducers
from pytorch_metric_learning.reducers import AvgNonZeroReducer, MeanReducer, MultipleReducers

import pml_metrix
from pml_metrix.losses import contrastive
from pml_metrix.reducers import WeightedReducer
from pml_metrix.reducers.weighted_reducer import PAIR_MATRIX, drops_zero_losses


def test_weighted_reducer_scales_after_reduction_and_records_the_unweighted_value():
    reducer = WeightedReducer(AvgNonZeroReducer(), weight=0.5, collect_stats=True)
    losses = torch.tensor([0.0, 2.0, 4.0])
    info = {"loss": {"losses": losses, "indices": torch.arange(3), "reduction_type": "element"}}
    assert reducer(info, torch.zeros(3, 2), None).item() == 1.5  # 0.5 * mean of the non-zero terms
    assert reducer.value == 3.0


def test_user_multiple_reducers_are_copied_and_completed():
    user = MultipleReducers({"loss": AvgNonZeroReducer()})
    loss_fn = pml_metrix.MetrixMSLoss(reducer=user, mix_weight=0.3)
    assert set(loss_fn.reducer.reducers) == {"loss", "mixed_loss"}
    assert isinstance(loss_fn.reducer.reducers["loss"].reducer, AvgNonZeroReducer)
    assert isinstance(loss_fn.reducer.reducers["mixed_loss"].reducer, MeanReducer)
    assert loss_fn.reducer.reducers["mixed_loss"].weight == 0.3
    assert set(user.reducers) == {"loss"} and not isinstance(user.reducers["loss"], WeightedReducer)


def test_a_plain_reducer_serves_every_sub_loss():
    loss_fn = pml_metrix.MetrixContrastiveLoss(reducer=MeanReducer())
    names = {"pos_loss", "neg_loss", "mixed_pos_loss", "mixed_neg_loss"}
    assert set(loss_fn.reducer.reducers) == names
    assert all(isinstance(r.reducer, MeanReducer) for r in loss_fn.reducer.reducers.values())


PAIR_REDUCERS = [  # (reducer, whether it leaves out zero losses: takes the matrix itself)
    (reducers.AvgNonZeroReducer(), True),
    (reducers.ThresholdReducer(low=0.05, high=5.0), True),
    (reducers.ThresholdReducer(low=-1.0), False),
    (reducers.ThresholdReducer(high=0.5), False),
    (reducers.MeanReducer(), False),
    (reducers.SumReducer(), False),
    (reducers.PerAnchorReducer(), False),
    (reducers.ClassWeightedReducer(weights=torch.linspace(0.5, 1.5, 3)), False),
]
reducer_id = lambda case: type(case[0]).__name__  # noqa: E731


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
    """As the matrix itself for reducers that leave out zeros, as the list otherwise: the value and
    gradient of the inner reducer over the kept pairs listed in row-major order, with their anchors."""
    reducer, drops_zeros = case
    assert drops_zero_losses(reducer) == drops_zeros
    terms, kept, labels = pair_matrix_case(seed)
    embeddings = torch.zeros(6, 2, dtype=torch.float64)
    wrapped = WeightedReducer(copy.deepcopy(reducer), collect_stats=True)
    value = wrapped({"loss": {"losses": terms, "indices": kept, "reduction_type": PAIR_MATRIX}}, embeddings, labels)
    (grad,) = torch.autograd.grad(value, terms)
    anchors, refs = kept.nonzero(as_tuple=True)
    listed = {"losses": terms[anchors, refs], "indices": anchors, "reduction_type": "element"}
    expected = copy.deepcopy(reducer)({"loss": listed}, embeddings, labels)
    (expected_grad,) = torch.autograd.grad(expected, terms)
    torch.testing.assert_close(value, expected, rtol=1e-15, atol=0)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-15, atol=0)
    assert wrapped.reducer.losses_size == len(anchors)


@pytest.mark.parametrize("case", PAIR_REDUCERS, ids=reducer_id)
def test_a_pair_matrix_without_kept_pairs_gives_the_zero_loss(case):
    reducer = case[0]
    terms = torch.zeros(3, 4, requires_grad=True)
    embeddings = torch.ones(3, 2, requires_grad=True)
    info = {"loss": {"losses": terms, "indices": torch.zeros(3, 4, dtype=torch.bool), "reduction_type": PAIR_MATRIX}}
    value = WeightedReducer(copy.deepcopy(reducer))(info, embeddings, torch.zeros(3, dtype=torch.long))
    assert value.item() == 0.0 and value.requires_grad


def test_a_pair_matrix_is_refused_by_plain_pml_reducers():
    terms, kept, labels = pair_matrix_case(0)
    with pytest.raises(AttributeError, match=PAIR_MATRIX):
        reducers.MeanReducer()({"loss": {"losses": terms, "indices": kept, "reduction_type": PAIR_MATRIX}}, None, labels)


@pytest.mark.parametrize("form", ["list", "matrix"])
@pytest.mark.parametrize("reducer", [reducers.MeanReducer(), reducers.AvgNonZeroReducer()], ids=lambda r: type(r).__name__)
def test_contrastive_mixed_part_reduces_its_kept_pairs(reducer, form, monkeypatch):
    """End to end, either form of a sub-loss: each mixed sub-loss is the reducer over the terms of its
    kept pairs."""
    monkeypatch.setattr(contrastive, "PAIR_LIST_FRACTION", 1.0 if form == "list" else 0.0)
    torch.manual_seed(0)
    embeddings, labels = torch.randn(10, 4, dtype=torch.float64), torch.randint(0, 3, (10,))
    plan = pml_metrix.MixingPlan(torch.randint(0, 10, (7, 2)), torch.rand(7, dtype=torch.float64), torch.rand(10, 7) < 0.6)
    mb = plan.mixed_batch(plan.mix(embeddings))
    loss_fn = pml_metrix.MetrixContrastiveLoss(pos_margin=0.2, neg_margin=1.5, reducer=copy.deepcopy(reducer))
    soft = mb.soft_pairs(labels, labels)
    d = loss_fn.distance(embeddings, mb.embeddings)
    y, mask = soft.soft_labels, soft.pair_mask
    pos = [y[a, k] * max(d[a, k] - 0.2, 0) for a, k in ((y > 0) & mask).nonzero().tolist()]
    neg = [(1 - y[a, k]) * max(1.5 - d[a, k], 0) for a, k in ((y < 1) & mask).nonzero().tolist()]
    if isinstance(reducer, reducers.AvgNonZeroReducer):
        pos, neg = [t for t in pos if t > 0], [t for t in neg if t > 0]
    expected = sum(pos) / max(len(pos), 1) + sum(neg) / max(len(neg), 1)
    mixed_only = loss_fn(embeddings, labels, mb) - loss_fn(embeddings, labels)
    assert mixed_only.item() == pytest.approx(loss_fn.mix_weight * float(expected), rel=1e-10)
