"""Checks shared by tests/losses/test_supcon.py and test_ntxent.py: a Metrix loss of the
softmax-contrastive family against its PML twin (bit for bit) and its soft form against a slow
per-anchor reference (tests/reference.py)."""

import copy

import pytest
import torch
from hypothesis import strategies as st
from pytorch_metric_learning import distances, miners, regularizers

import pml_metrix
from tests.losses.test_exactness import draw_pair_case, reducer_strategy, run_both
from tests.strategies import pml_distances

TEMPERATURES = st.sampled_from([0.07, 0.1, 0.5, 1.0])


def every_distance(dim: int):
    """PML's distances of tests/strategies.py, and the signal-to-noise ratio distance for ``dim`` > 1
    (a variance over one coordinate is NaN)."""
    return st.one_of(pml_distances(), st.just(distances.SNRDistance())) if dim > 1 else pml_distances()


def check_matches_pml(ours_cls, theirs_cls, data):
    """Binary labels, a PML tuple or none, with or without ref_emb: PML's value and gradients bit for bit."""
    embeddings, labels, indices_tuple, ref_emb, ref_labels = draw_pair_case(data)
    kwargs = dict(temperature=data.draw(TEMPERATURES), distance=data.draw(every_distance(embeddings.shape[1])))
    kwargs["reducer"] = data.draw(reducer_strategy(int(labels.max()) + 1))
    if data.draw(st.booleans()):
        kwargs["embedding_regularizer"] = regularizers.LpRegularizer()
    ours, theirs = ours_cls(**copy.deepcopy(kwargs)), theirs_cls(**copy.deepcopy(kwargs))
    run_both(ours, theirs, embeddings, labels, indices_tuple, ref_emb, ref_labels)


@st.composite
def soft_cases(draw):
    """(case, temperature, distance): a :func:`soft_case` of 1 to 12 anchors and references."""
    case = soft_case(draw(st.integers(0, 2**31 - 1)), draw(st.integers(1, 12)), draw(st.integers(1, 12)), draw(st.booleans()))
    distance = draw(st.sampled_from([distances.CosineSimilarity(), distances.LpDistance(), distances.DotProductSimilarity()]))
    return case, draw(st.sampled_from([0.07, 0.1, 1.0])), distance


def soft_case(seed, num_anchors, num_refs, masked):
    """float64 anchors and references, soft labels in [0, 1] with some exact 0s and 1s, a pair mask."""
    g = torch.Generator().manual_seed(seed)
    embeddings = torch.randn(num_anchors, 5, generator=g, dtype=torch.float64)
    refs = torch.randn(num_refs, 5, generator=g, dtype=torch.float64)
    soft_labels = torch.rand(num_anchors, num_refs, generator=g, dtype=torch.float64)
    draw = torch.rand(num_anchors, num_refs, generator=g)
    soft_labels[draw < 0.3] = 0.0
    soft_labels[draw > 0.8] = 1.0
    pair_mask = torch.rand(num_anchors, num_refs, generator=g) < 0.7 if masked else None
    return embeddings, refs, soft_labels, pair_mask


def reference_value(reference_fn, loss_fn, mat, soft_pairs):
    """The reference of ``loss_fn``'s soft form over ``mat`` (A x R) and the SoftPairs' labels and mask."""
    mask = soft_pairs.pair_mask
    mask = torch.ones_like(soft_pairs.soft_labels, dtype=torch.bool) if mask is None else mask
    return reference_fn(mat, soft_pairs.soft_labels.tolist(), mask.tolist(), loss_fn.temperature, loss_fn.distance.is_inverted)


def check_soft_against_reference(loss_fn, reference_fn, case):
    """The SoftPairs loss and its gradients (embeddings and references) against the reference: relative
    error <= 1e-12, or absolute error <= 1e-15 where the value is near 0 (a term ``-log(ratio)`` of
    a ratio within 1e-6 of 1, or an exactly zero gradient as of an anchor whose one reference is
    both its positive and its negative: their rounding, about 1e-16, is absolute in any form)."""
    embeddings, refs, soft_labels, pair_mask = case
    embeddings, refs = embeddings.clone().requires_grad_(), refs.clone().requires_grad_()
    soft_pairs = pml_metrix.SoftPairs(refs, soft_labels, pair_mask)
    ours = loss_fn(embeddings, None, soft_pairs)
    expected = reference_value(reference_fn, loss_fn, loss_fn.distance(embeddings, refs), soft_pairs)
    if not torch.is_tensor(expected):  # no term: PML's zero loss
        assert ours.item() == expected == 0.0
        return
    assert ours.item() == pytest.approx(expected.item(), rel=1e-12, abs=1e-15)
    inputs = (embeddings, refs)
    for mine, theirs in zip(torch.autograd.grad(ours, inputs), torch.autograd.grad(expected, inputs)):
        assert (mine - theirs).abs().max().item() <= max(1e-12 * theirs.abs().max().item(), 1e-15)


def check_mixed_batch(loss_cls, reference_fn, distance, shown_to):
    """A MixupMiner's MixedBatch at embedding level gives clean + mix_weight * mixed, bit for bit,
    and its mixed part is the reference's over the MixedBatch's soft labels, its pair mask showing
    each anchor the mixes of other classes too (y = 0)."""
    g = torch.Generator().manual_seed(0)
    embeddings, labels = torch.randn(24, 6, generator=g, dtype=torch.float64), torch.arange(6).repeat_interleave(4)
    loss_fn = loss_cls(distance=distance, mix_weight=0.3)
    miner = pml_metrix.MixupMiner(inner_miner=miners.MultiSimilarityMiner(0.1), shown_to=shown_to, seed=1)
    mixed_batch = miner(embeddings, labels)
    shown = mixed_batch.soft_pairs(labels)
    assert torch.equal(shown.pair_mask | (shown.soft_labels == 0), loss_fn.mixed_soft_pairs(mixed_batch, labels).pair_mask)
    soft_pairs = loss_fn.mixed_soft_pairs(mixed_batch, labels)
    mixed = loss_fn(embeddings, None, soft_pairs)
    clean = loss_fn(embeddings, labels, mixed_batch.indices_tuple)
    assert torch.equal(loss_fn(embeddings, labels, mixed_batch), clean + 0.3 * mixed)
    assert mixed.item() > 0
    expected = reference_value(reference_fn, loss_fn, loss_fn.distance(embeddings, mixed_batch.embeddings), soft_pairs)
    assert mixed.item() == pytest.approx(float(expected), rel=1e-12)


def check_bool_soft_pairs(ours, theirs, float_rel):
    """SoftPairs of bool labels give the PML twin's loss with those references bit for bit; the same
    labels as floats (the soft arithmetic) agree to ``float_rel``."""
    g = torch.Generator().manual_seed(0)
    embeddings, refs = torch.randn(12, 5, generator=g), torch.randn(9, 5, generator=g)
    labels, ref_labels = torch.randint(0, 3, (12,), generator=g), torch.randint(0, 3, (9,), generator=g)
    same = labels[:, None] == ref_labels[None, :]
    expected = theirs(embeddings, labels, ref_emb=refs, ref_labels=ref_labels)
    assert torch.equal(ours(embeddings, None, pml_metrix.SoftPairs(refs, same)), expected)
    assert ours(embeddings, None, pml_metrix.SoftPairs(refs, same.float())).item() == pytest.approx(expected.item(), rel=float_rel, abs=0)


def check_zero_without_negatives(loss_fn):
    """As in PML, no pair with y < 1 (or none with y > 0) gives the zero loss."""
    embeddings, refs = torch.randn(4, 3), torch.randn(5, 3)
    assert loss_fn(embeddings, None, pml_metrix.SoftPairs(refs, torch.ones(4, 5))).item() == 0.0
    assert loss_fn(embeddings, None, pml_metrix.SoftPairs(refs, torch.zeros(4, 5))).item() == 0.0
