"""With binary labels (a PML miner tuple or none) each Metrix loss equals its PML twin: same value,
same gradients, for every distance, reducer, regularizer and miner tuple."""

import copy

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pytorch_metric_learning import losses, reducers, regularizers

import pml_metrix
from tests.strategies import batches, pml_distances, random_tuple

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TOLERANCE = {torch.float64: 1e-12, torch.float32: 1e-6}


def relative_error(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    scale = theirs.abs().max().item()
    return (ours - theirs).abs().max().item() / scale if scale > 0 else (ours - theirs).abs().max().item()


def reducer_strategy(num_classes: int):
    return st.sampled_from(
        [
            None,
            reducers.MeanReducer(),
            reducers.AvgNonZeroReducer(),
            reducers.SumReducer(),
            reducers.ThresholdReducer(low=0.05, high=5.0),
            reducers.PerAnchorReducer(),
            reducers.ClassWeightedReducer(weights=torch.linspace(0.5, 1.5, num_classes)),
        ]
    )


def run(loss_fn, embeddings, labels, indices_tuple, ref_emb=None, ref_labels=None):
    embeddings = embeddings.clone().requires_grad_()
    inputs = [embeddings]
    if ref_emb is not None:
        ref_emb = ref_emb.clone().requires_grad_()
        inputs.append(ref_emb)
    params = [p for p in loss_fn.parameters()]
    value = loss_fn(embeddings, labels, indices_tuple, ref_emb, ref_labels)
    grads = torch.autograd.grad(value, inputs + params, allow_unused=True)
    return value.detach(), [g if g is not None else torch.zeros_like(x) for g, x in zip(grads, inputs + params)]


def assert_same(ours, theirs, dtype, bitwise: bool):
    (value, grads), (ref_value, ref_grads) = ours, theirs
    if bitwise:
        assert torch.equal(value, ref_value), (value, ref_value)
        for g, ref_g in zip(grads, ref_grads):
            assert torch.equal(g, ref_g)
    tol = TOLERANCE[dtype]
    assert relative_error(value, ref_value) <= tol, (value, ref_value)
    for g, ref_g in zip(grads, ref_grads):
        assert relative_error(g, ref_g) <= tol


PAIR_LOSSES = [
    (
        "ms",
        lambda draw: dict(
            alpha=draw(st.sampled_from([2.0, 17.97])),
            beta=draw(st.sampled_from([50.0, 75.66])),
            base=draw(st.sampled_from([0.5, 0.77, -0.2])),
        ),
        pml_metrix.MetrixMSLoss,
        losses.MultiSimilarityLoss,
    ),
    (
        "contrastive",
        lambda draw: dict(
            pos_margin=draw(st.sampled_from([0.0, 0.2])), neg_margin=draw(st.sampled_from([0.5, 1.0, 1.5]))
        ),
        pml_metrix.MetrixContrastiveLoss,
        losses.ContrastiveLoss,
    ),
]


def draw_pair_case(data):
    """A batch, maybe references (ref_emb, ref_labels), and a PML tuple of a drawn kind over them:
    (embeddings, labels, indices_tuple, ref_emb, ref_labels)."""
    embeddings, labels, seed = data.draw(batches())
    use_ref = data.draw(st.booleans())
    ref_emb = ref_labels = None
    if use_ref:
        g = torch.Generator().manual_seed(seed + 1)
        num_ref = data.draw(st.integers(1, 32))
        ref_emb = torch.randn(num_ref, embeddings.shape[1], generator=g, dtype=torch.float64).to(embeddings.dtype)
        ref_labels = torch.randint(0, int(labels.max()) + 2, (num_ref,), generator=g)
    kind = data.draw(st.sampled_from(["none", "pairs", "triplets", "empty"]))
    indices_tuple = random_tuple(kind, labels, ref_labels if use_ref else labels, seed, same_set=not use_ref)
    return embeddings, labels, indices_tuple, ref_emb, ref_labels


def run_both(ours, theirs, embeddings, labels, indices_tuple, ref_emb, ref_labels):
    """Both losses' values and gradients the same, bit for bit (or both raise PML's IndexError)."""
    try:
        expected = run(theirs, embeddings, labels, indices_tuple, ref_emb, ref_labels)
    except IndexError as error:  # PML's PerAnchorReducer assumes ref_emb is the batch: so must we
        with pytest.raises(type(error)):
            run(ours, embeddings, labels, indices_tuple, ref_emb, ref_labels)
        return
    assert_same(run(ours, embeddings, labels, indices_tuple, ref_emb, ref_labels), expected, embeddings.dtype, bitwise=True)


@pytest.mark.parametrize("name,params,ours_cls,theirs_cls", PAIR_LOSSES, ids=[p[0] for p in PAIR_LOSSES])
@SETTINGS
@given(data=st.data())
def test_pair_losses_match_pml(name, params, ours_cls, theirs_cls, data):
    embeddings, labels, indices_tuple, ref_emb, ref_labels = draw_pair_case(data)
    kwargs = params(data.draw)
    kwargs["distance"] = data.draw(pml_distances())
    kwargs["reducer"] = data.draw(reducer_strategy(int(max(labels.max(), 0)) + 1))
    if data.draw(st.booleans()):
        kwargs["embedding_regularizer"] = regularizers.LpRegularizer()
    ours = ours_cls(**copy.deepcopy(kwargs))
    theirs = theirs_cls(**copy.deepcopy(kwargs))
    run_both(ours, theirs, embeddings, labels, indices_tuple, ref_emb, ref_labels)


@SETTINGS
@given(data=st.data())
def test_proxy_anchor_matches_pml(data):
    embeddings, labels, seed = data.draw(batches())
    num_classes = int(labels.max()) + 1 + data.draw(st.integers(0, 3))
    kind = data.draw(st.sampled_from(["none", "pairs", "triplets", "empty"]))
    indices_tuple = random_tuple(kind, labels, labels, seed, same_set=True)
    kwargs = dict(
        num_classes=num_classes,
        embedding_size=embeddings.shape[1],
        margin=data.draw(st.sampled_from([0.1, 0.0, 0.3])),
        alpha=data.draw(st.sampled_from([32.0, 8.0])),
        distance=data.draw(pml_distances()),
    )
    reducer = data.draw(st.sampled_from([None, reducers.DivisorReducer()]))
    if reducer is not None:
        kwargs["reducer"] = reducer
    if data.draw(st.booleans()):
        kwargs["weight_regularizer"] = regularizers.RegularFaceRegularizer()
    if data.draw(st.booleans()):
        kwargs["embedding_regularizer"] = regularizers.LpRegularizer()
    torch.manual_seed(seed)
    ours = pml_metrix.MetrixProxyAnchorLoss(**copy.deepcopy(kwargs))
    torch.manual_seed(seed)
    theirs = losses.ProxyAnchorLoss(**copy.deepcopy(kwargs))
    assert torch.equal(ours.proxies, theirs.proxies)
    # The proxies are a learnable parameter, cast like PML's.
    assert isinstance(ours.proxies, torch.nn.Parameter)
    assert_same(
        run(ours, embeddings, labels, indices_tuple),
        run(theirs, embeddings, labels, indices_tuple),
        embeddings.dtype,
        bitwise=True,
    )
    assert ours.proxies.dtype == theirs.proxies.dtype == embeddings.dtype


def test_metrix_losses_are_their_pml_twins():
    assert isinstance(pml_metrix.MetrixMSLoss(), losses.MultiSimilarityLoss)
    assert isinstance(pml_metrix.MetrixContrastiveLoss(), losses.ContrastiveLoss)
    assert isinstance(pml_metrix.MetrixProxyAnchorLoss(3, 4), losses.ProxyAnchorLoss)
    assert pml_metrix.losses.MetrixMSLoss is pml_metrix.MetrixMSLoss
    ms = pml_metrix.MetrixMSLoss()
    assert (ms.alpha, ms.beta, ms.base, ms.mix_weight) == (2, 50, 0.5, 0.4)


TENSOR_OPTIONS = [
    (pml_metrix.MetrixSupConLoss, losses.SupConLoss, {}, "temperature", 0.1),
    (pml_metrix.MetrixNTXentLoss, losses.NTXentLoss, {}, "temperature", 0.07),
    (pml_metrix.MetrixMSLoss, losses.MultiSimilarityLoss, {}, "alpha", 2.0),
    (pml_metrix.MetrixMSLoss, losses.MultiSimilarityLoss, {}, "base", 0.5),
    (pml_metrix.MetrixContrastiveLoss, losses.ContrastiveLoss, {}, "neg_margin", 1.0),
    (pml_metrix.MetrixProxyAnchorLoss, losses.ProxyAnchorLoss, {"num_classes": 3, "embedding_size": 5}, "alpha", 32.0),
]


@pytest.mark.parametrize("ours_cls,theirs_cls,kwargs,name,value", TENSOR_OPTIONS, ids=[f"{o[0].__name__}-{o[3]}" for o in TENSOR_OPTIONS])
def test_an_option_given_as_a_learnable_tensor_is_pml_s_and_learns_through_the_mixes(ours_cls, theirs_cls, kwargs, name, value):
    """PML's losses take a numeric option as a tensor (a learnable temperature): so do the Metrix
    losses, with PML's value and gradients bit for bit (the option's own too), and a gradient for it
    through the mixed part."""
    generator = torch.Generator().manual_seed(0)
    embeddings, labels = torch.randn(12, 5, generator=generator), torch.randint(0, 3, (12,), generator=generator)
    results = []
    for cls in (ours_cls, theirs_cls):
        torch.manual_seed(1)  # the same proxies
        loss_fn = cls(**kwargs, **{name: torch.nn.Parameter(torch.tensor(value))})
        leaf = embeddings.clone().requires_grad_()
        loss = loss_fn(leaf, labels)
        results.append((loss.detach(), *torch.autograd.grad(loss, [leaf, getattr(loss_fn, name)])))
    for ours, theirs in zip(*results):
        assert torch.equal(ours, theirs)
    if ours_cls is pml_metrix.MetrixProxyAnchorLoss:
        return  # its MixupMiner needs num_classes; the clean part above is the check here
    loss_fn = ours_cls(mix_weight=1.0, **{name: torch.nn.Parameter(torch.tensor(value))})
    mixed_batch = pml_metrix.MixupMiner(seed=0)(embeddings, labels)
    mixed = loss_fn(embeddings, None, loss_fn.mixed_soft_pairs(mixed_batch, labels))
    assert torch.autograd.grad(mixed, getattr(loss_fn, name))[0] != 0


def test_a_loss_with_a_learnable_option_is_built_on_the_meta_device():
    """A tensor option on the meta device has no value to check: the loss is built, as PML's is."""
    with torch.device("meta"):
        loss_fn = pml_metrix.MetrixSupConLoss(temperature=torch.nn.Parameter(torch.tensor(0.1)))
    assert loss_fn.temperature.device.type == "meta"
