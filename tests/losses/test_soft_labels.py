"""The mixed (soft-label) part of each loss: against a slow per-anchor reference, gradcheck,
lam in {0, 1}, permutation invariance, mix_weight, and records."""

import dataclasses

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pytorch_metric_learning import losses, reducers

import pml_metrix
from tests import reference
from tests.strategies import pml_distances

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def random_mixed_batch(embeddings, seed, num_mixed, mask_rows=None, num_classes=None, lam=None):
    g = torch.Generator().manual_seed(seed)
    batch_size = embeddings.shape[0]
    source_index = torch.randint(0, batch_size, (num_mixed, 2), generator=g)
    if lam is None:
        lam = torch.rand(num_mixed, generator=g, dtype=torch.float64).to(embeddings.dtype)
    mixed = lam[:, None] * embeddings[source_index[:, 0]] + (1 - lam[:, None]) * embeddings[source_index[:, 1]]
    pair_mask = None if mask_rows is None else torch.rand(mask_rows, num_mixed, generator=g) < 0.6
    return pml_metrix.MixedBatch(mixed, source_index, lam, pair_mask, num_classes=num_classes)


def soft_part(loss_fn, embeddings, labels, mixed_batch):
    """The mixed part alone, through the public SoftPairs path."""
    return loss_fn(embeddings, None, loss_fn.mixed_soft_pairs(mixed_batch, labels))


def as_lists(*tensors):
    return [t.tolist() for t in tensors]


@st.composite
def soft_cases(draw):
    batch_size = draw(st.integers(2, 24))
    dim = draw(st.integers(1, 8))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    embeddings = torch.randn(batch_size, dim, generator=g, dtype=torch.float64)
    labels = torch.randint(0, draw(st.integers(1, 5)), (batch_size,), generator=g)
    return embeddings, labels, seed, draw(st.integers(1, 20)), draw(st.booleans())


@SETTINGS
@given(case=soft_cases(), distance=pml_distances(), base=st.sampled_from([0.5, 0.77]))
def test_ms_mixed_part_matches_reference(case, distance, base):
    embeddings, labels, seed, num_mixed, masked = case
    loss_fn = pml_metrix.MetrixMSLoss(alpha=2.0, beta=10.0, base=base, distance=distance)
    mb = random_mixed_batch(embeddings, seed, num_mixed, len(labels) if masked else None)
    soft = mb.soft_pairs(labels)
    mask = soft.pair_mask if masked else torch.ones_like(soft.soft_labels, dtype=torch.bool)
    mat = distance(embeddings, mb.embeddings)
    expected = reference.ms_soft(*as_lists(mat, soft.soft_labels, mask), 2.0, 10.0, base, distance.is_inverted)
    assert soft_part(loss_fn, embeddings, labels, mb).item() == pytest.approx(expected, rel=1e-10, abs=1e-12)


@SETTINGS
@given(case=soft_cases(), distance=pml_distances())
def test_contrastive_mixed_part_matches_reference(case, distance):
    embeddings, labels, seed, num_mixed, masked = case
    loss_fn = pml_metrix.MetrixContrastiveLoss(pos_margin=0.1, neg_margin=1.0, distance=distance)
    mb = random_mixed_batch(embeddings, seed, num_mixed, len(labels) if masked else None)
    soft = mb.soft_pairs(labels)
    mask = soft.pair_mask if masked else torch.ones_like(soft.soft_labels, dtype=torch.bool)
    mat = distance(embeddings, mb.embeddings)
    expected = reference.contrastive_soft(*as_lists(mat, soft.soft_labels, mask), 0.1, 1.0, distance.is_inverted)
    assert soft_part(loss_fn, embeddings, labels, mb).item() == pytest.approx(expected, rel=1e-10, abs=1e-12)


@SETTINGS
@given(case=soft_cases(), distance=pml_distances())
def test_proxy_anchor_mixed_part_matches_reference(case, distance):
    embeddings, labels, seed, num_mixed, masked = case
    num_classes = int(labels.max()) + 2
    torch.manual_seed(seed)
    loss_fn = pml_metrix.MetrixProxyAnchorLoss(num_classes, embeddings.shape[1], alpha=8.0, distance=distance)
    mb = random_mixed_batch(embeddings, seed, num_mixed, num_classes if masked else None, num_classes)
    soft = loss_fn.mixed_soft_pairs(mb, labels)
    mask = soft.pair_mask if masked else torch.ones_like(soft.soft_labels, dtype=torch.bool)
    mat = distance(loss_fn.proxies.data.double(), mb.embeddings)
    expected = reference.proxy_anchor_soft(*as_lists(mat, soft.soft_labels, mask), 8.0, 0.1, distance.is_inverted)
    assert soft_part(loss_fn, embeddings, labels, mb).item() == pytest.approx(expected, rel=1e-10, abs=1e-12)


def make_losses(dim, num_classes):
    return [
        pml_metrix.MetrixMSLoss(),
        pml_metrix.MetrixContrastiveLoss(),
        pml_metrix.MetrixProxyAnchorLoss(num_classes, dim),
    ]


def mask_rows(index, batch_size, num_classes=4):
    """(pair mask rows, MixedBatch.num_classes) for loss ``index`` of make_losses: classes for proxy
    anchor, batch items otherwise."""
    return (num_classes, num_classes) if index == 2 else (batch_size, None)


@pytest.mark.parametrize("index", [0, 1, 2], ids=["ms", "contrastive", "proxy_anchor"])
def test_total_is_clean_plus_weighted_mixed_and_both_parts_are_recorded(index):
    torch.manual_seed(0)
    embeddings, labels = torch.randn(16, 8, dtype=torch.float64), torch.randint(0, 4, (16,))
    loss_fn = make_losses(8, 4)[index]
    loss_fn.mix_weight = 0.25
    loss_fn.collect_stats = True
    loss_fn.add_to_recordable_attributes(list_of_names=["clean_loss", "mixed_loss"], is_stat=True)
    mb = random_mixed_batch(embeddings, 1, 12, *mask_rows(index, 16))
    total = loss_fn(embeddings, labels, mb)
    recorded = loss_fn.clean_loss, loss_fn.mixed_loss
    clean = loss_fn(embeddings, labels)
    mixed = soft_part(loss_fn, embeddings, labels, mb)
    assert total.item() == pytest.approx(clean.item() + 0.25 * mixed.item(), rel=1e-12)
    assert recorded == pytest.approx((clean.item(), mixed.item()), rel=1e-12) and mixed.item() > 0


def effective_mix_weight(loss_fn, embeddings, labels, mb):
    """(total - clean) / mixed, each computed by the loss as it stands."""
    total = loss_fn(embeddings, labels, mb).item()
    clean = loss_fn(embeddings, labels, mb.indices_tuple).item()
    return (total - clean) / soft_part(loss_fn, embeddings, labels, mb).item()


def sub_loss_reducers(loss_fn, make_reducer):
    return reducers.MultipleReducers({name: make_reducer() for name in loss_fn.sub_loss_names()})


@pytest.mark.parametrize("index", [0, 1, 2], ids=["ms", "contrastive", "proxy_anchor"])
@pytest.mark.parametrize("route", ["set_reducer", "assignment", "multiple_reducers", "construction"])
def test_the_effective_mixed_weight_is_mix_weight_whatever_the_reducer_route(index, route):
    torch.manual_seed(0)
    embeddings, labels = torch.randn(16, 8, dtype=torch.float64), torch.randint(0, 4, (16,))
    mb = random_mixed_batch(embeddings, 1, 12, *mask_rows(index, 16))
    loss_fn = make_losses(8, 4)[index]
    make = reducers.SumReducer if index != 2 else reducers.DivisorReducer
    if route == "set_reducer":
        loss_fn.set_reducer(make())
    elif route == "assignment":  # PML's own MultipleReducers for the losses with two sub-losses
        loss_fn.reducer = make() if index == 0 else sub_loss_reducers(loss_fn, make)
    elif route == "multiple_reducers":
        loss_fn.set_reducer(sub_loss_reducers(loss_fn, make))
    else:
        loss_fn = type(loss_fn)(**({"num_classes": 4, "embedding_size": 8} if index == 2 else {}), reducer=make())
    for weight in (0.4, 0.1, 1.0):
        loss_fn.mix_weight = weight
        assert effective_mix_weight(loss_fn, embeddings, labels, mb) == pytest.approx(weight, rel=1e-9)


def test_a_mix_weight_per_strategy_weights_the_batch_s_strategy():
    torch.manual_seed(0)
    embeddings, labels = torch.randn(16, 8, dtype=torch.float64), torch.randint(0, 4, (16,))
    mb = random_mixed_batch(embeddings, 1, 12, 16)
    loss_fn = pml_metrix.MetrixMSLoss(mix_weight={"positive_negative": 0.4, "anchor_negative": 0.3})
    for strategy, weight in (("positive_negative", 0.4), ("anchor_negative", 0.3)):
        named = dataclasses.replace(mb.plan, strategy=strategy).mixed_batch(mb.embeddings)
        assert effective_mix_weight(loss_fn, embeddings, labels, named) == pytest.approx(weight, rel=1e-9)
    with pytest.raises(ValueError, match="draw one strategy per step"):
        loss_fn(embeddings, labels, mb)
    with pytest.raises(ValueError, match="keys must be strategies"):
        pml_metrix.MetrixMSLoss(mix_weight={"positive": 0.4})


@pytest.mark.parametrize("index", [0, 1, 2], ids=["ms", "contrastive", "proxy_anchor"])
def test_gradcheck_through_the_mixed_loss(index):
    torch.manual_seed(index)
    embeddings = torch.randn(10, 5, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 0, 1, 2, 3])
    loss_fn = make_losses(5, 4)[index]
    g = torch.Generator().manual_seed(3)
    first = torch.randint(0, 10, (8,), generator=g)  # i != j: a mix never sits on a batch item,
    second = (first + torch.randint(1, 10, (8,), generator=g)) % 10  # where the L2 distance has no gradient
    source_index = torch.stack([first, second], 1)
    lam = torch.rand(8, generator=g, dtype=torch.float64)
    rows, num_classes = mask_rows(index, 10)
    pair_mask = torch.rand(rows, 8, generator=g) < 0.7

    def total(emb):
        mixed = lam[:, None] * emb[source_index[:, 0]] + (1 - lam[:, None]) * emb[source_index[:, 1]]
        return loss_fn(emb, labels, pml_metrix.MixedBatch(mixed, source_index, lam, pair_mask, num_classes=num_classes))

    assert torch.autograd.gradcheck(total, (embeddings,))


@pytest.mark.parametrize("lam_value,column", [(1.0, 0), (0.0, 1)])
def test_lam_zero_or_one_reduces_to_clean_pairs(lam_value, column):
    """A mix at lam = 1 (0) is item i (j) with its class label: the mixed part is then the PML
    loss against those items as references."""
    torch.manual_seed(0)
    embeddings, labels = torch.randn(20, 6), torch.randint(0, 4, (20,))
    mb = random_mixed_batch(embeddings, 5, 15, lam=torch.full((15,), lam_value))
    source = mb.source_index[:, column]
    assert torch.equal(mb.embeddings, embeddings[source])
    for ours, theirs in [
        (pml_metrix.MetrixMSLoss(), losses.MultiSimilarityLoss()),
        (pml_metrix.MetrixContrastiveLoss(), losses.ContrastiveLoss()),
    ]:
        expected = theirs(embeddings, labels, ref_emb=embeddings[source], ref_labels=labels[source])
        assert torch.equal(soft_part(ours, embeddings, labels, mb), expected)
    ours = pml_metrix.MetrixProxyAnchorLoss(4, 6)
    theirs = losses.ProxyAnchorLoss(4, 6)
    theirs.proxies.data.copy_(ours.proxies.data)
    expected = theirs(embeddings[source], labels[source])
    assert torch.equal(soft_part(ours, embeddings, labels, mb), expected)


@pytest.mark.parametrize("index", [0, 1, 2], ids=["ms", "contrastive", "proxy_anchor"])
def test_permuting_mixed_items_leaves_the_loss_unchanged(index):
    torch.manual_seed(0)
    embeddings, labels = torch.randn(16, 6, dtype=torch.float64), torch.randint(0, 4, (16,))
    loss_fn = make_losses(6, 4)[index]
    mb = random_mixed_batch(embeddings, 2, 12, *mask_rows(index, 16))
    perm = torch.randperm(12)
    permuted = pml_metrix.MixedBatch(
        mb.embeddings[perm], mb.source_index[perm], mb.lam[perm], mb.pair_mask[:, perm], num_classes=mb.num_classes
    )
    assert loss_fn(embeddings, labels, permuted).item() == pytest.approx(loss_fn(embeddings, labels, mb).item(), rel=1e-12)


def test_mixed_batch_with_no_items_gives_the_clean_loss():
    embeddings, labels = torch.randn(8, 4), torch.zeros(8, dtype=torch.long)
    empty = pml_metrix.MixedBatch(torch.zeros(0, 4), torch.zeros(0, 2, dtype=torch.long), torch.zeros(0))
    for loss_fn in make_losses(4, 1):
        assert torch.equal(loss_fn(embeddings, labels, empty), loss_fn(embeddings, labels))


def test_clean_part_uses_the_mixed_batch_indices_tuple():
    torch.manual_seed(0)
    embeddings, labels = torch.randn(16, 6), torch.randint(0, 4, (16,))
    indices_tuple = (torch.tensor([0, 1]), torch.tensor([2, 3]), torch.tensor([4, 5]))
    mb = random_mixed_batch(embeddings, 2, 10)
    with_tuple = pml_metrix.MixedBatch(mb.embeddings, mb.source_index, mb.lam, None, indices_tuple)
    loss_fn = pml_metrix.MetrixMSLoss(mix_weight=0.0)
    assert torch.equal(loss_fn(embeddings, labels, with_tuple), losses.MultiSimilarityLoss()(embeddings, labels, indices_tuple))


@given(seed=st.integers(0, 2**31 - 1), which=st.sampled_from(["ms", "proxy_anchor"]), inverted=st.booleans())
@settings(max_examples=60, deadline=None)
def test_raising_a_soft_label_never_raises_the_pair_gradient(seed, which, inverted):
    """A higher label pulls harder: d loss / d s(a, v) does not increase when y(a, v) rises."""
    g = torch.Generator().manual_seed(seed)
    mat = (torch.rand(5, 7, generator=g, dtype=torch.float64) * 2 - 1).requires_grad_()
    soft_labels = torch.rand(5, 7, generator=g, dtype=torch.float64)
    pair_mask = torch.rand(5, 7, generator=g) < 0.8
    a, v = int(torch.randint(5, (1,), generator=g)), int(torch.randint(7, (1,), generator=g))
    pair_mask[a, v] = True
    raised = soft_labels.clone()
    raised[a, v] = soft_labels[a, v] + (1 - soft_labels[a, v]) * torch.rand(1, generator=g, dtype=torch.float64)

    def pair_gradient(y):
        if which == "ms":
            loss = pml_metrix.functional.multi_similarity_loss(
                mat, y, pair_mask, alpha=2.0, beta=50.0, base=0.5, inverted=inverted
            ).sum()
        else:
            pos, neg = pml_metrix.functional.proxy_anchor_terms(
                mat, y, pair_mask, alpha=32.0, margin=0.1, inverted=inverted
            )
            loss = pos.sum() + neg.sum()
        (grad,) = torch.autograd.grad(loss, mat)
        return grad[a, v].item() * (1 if inverted else -1)  # along similarity

    assert pair_gradient(raised) <= pair_gradient(soft_labels) + 1e-12


def test_soft_pairs_give_the_pml_loss_with_soft_labels_and_bool_labels_match_pml():
    torch.manual_seed(0)
    embeddings, labels = torch.randn(12, 5), torch.randint(0, 3, (12,))
    ref, ref_labels = torch.randn(9, 5), torch.randint(0, 3, (9,))
    same = labels[:, None] == ref_labels[None, :]
    for ours, theirs in [
        (pml_metrix.MetrixMSLoss(), losses.MultiSimilarityLoss()),
        (pml_metrix.MetrixContrastiveLoss(), losses.ContrastiveLoss()),
    ]:
        expected = theirs(embeddings, labels, ref_emb=ref, ref_labels=ref_labels)
        assert torch.equal(ours(embeddings, None, pml_metrix.SoftPairs(ref, same)), expected)
        assert torch.equal(ours(embeddings, None, pml_metrix.SoftPairs(ref, same.float())), expected)


def test_a_reducer_that_does_not_reduce_is_refused_with_a_mixed_batch():
    embeddings, labels = torch.randn(8, 4), torch.arange(4).repeat(2)
    loss_fn = pml_metrix.MetrixMSLoss(reducer=reducers.DoNothingReducer())
    assert isinstance(loss_fn(embeddings, labels), dict)  # PML's behaviour, untouched
    with pytest.raises(ValueError, match="returns no loss tensor"):
        loss_fn(embeddings, labels, random_mixed_batch(embeddings, 0, 6))


def test_per_anchor_reduction_of_more_mixes_than_anchors_is_refused_however_the_reducer_is_given():
    from pytorch_metric_learning.reducers import MeanReducer, MultipleReducers, PerAnchorReducer

    embeddings, labels = torch.randn(6, 4), torch.tensor([0, 0, 1, 1, 2, 2])
    mixed_batch = pml_metrix.MixupMiner(num_mixes=2, seed=0)(embeddings, labels)
    for reducer in (PerAnchorReducer(), MultipleReducers({"neg_loss": PerAnchorReducer()}),
                    MultipleReducers({}, default_reducer=PerAnchorReducer())):
        with pytest.raises(ValueError, match="PerAnchorReducer puts each pair's loss in a B x B table"):
            pml_metrix.MetrixContrastiveLoss(reducer=reducer)(embeddings, labels, mixed_batch)
    assert pml_metrix.MetrixContrastiveLoss(reducer=MeanReducer())(embeddings, labels, mixed_batch).isfinite()
    one_each = pml_metrix.MixupMiner(seed=0)(embeddings, labels)  # K = B: PML's table holds them
    assert pml_metrix.MetrixContrastiveLoss(reducer=PerAnchorReducer())(embeddings, labels, one_each).isfinite()
