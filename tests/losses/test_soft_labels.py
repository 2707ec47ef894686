"""The mixed (soft-label) part of each loss: against a slow per-anchor reference, gradcheck,
lam in {0, 1}, permutation invariance, mix_weight, and records."""

from functools import partial

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pytorch_metric_learning import distances, losses

import pml_metrix
from tests import reference
from tests.strategies import pml_distances

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def random_mixed_batch(embeddings, seed, num_mixed, mask_rows=None, lam=None):
    g = torch.Generator().manual_seed(seed)
    batch_size = embeddings.shape[0]
    source_index = torch.randint(0, batch_size, (num_mixed, 2), generator=g)
    if lam is None:
        lam = torch.rand(num_mixed, generator=g, dtype=torch.float64).to(embeddings.dtype)
    mixed = lam[:, None] * embeddings[source_index[:, 0]] + (1 - lam[:, None]) * embeddings[source_index[:, 1]]
    pair_mask = None if mask_rows is None else torch.rand(mask_rows, num_mixed, generator=g) < 0.6
    return pml_metrix.MixedBatch(mixed, source_index, lam, pair_mask)


def soft_part(loss_fn, embeddings, labels, mixed_batch):
    """The mixed part alone, through the public SoftPairs path."""
    soft = mixed_batch.soft_pairs(labels, loss_fn.anchor_labels(labels))
    return loss_fn(embeddings, None, soft)


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
    soft = mb.soft_pairs(labels, labels)
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
    soft = mb.soft_pairs(labels, labels)
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
    mb = random_mixed_batch(embeddings, seed, num_mixed, num_classes if masked else None)
    soft = mb.soft_pairs(labels, loss_fn.anchor_labels(labels))
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


@pytest.mark.parametrize("index", [0, 1, 2], ids=["ms", "contrastive", "proxy_anchor"])
def test_total_is_clean_plus_weighted_mixed_and_sub_losses_are_recorded(index):
    torch.manual_seed(0)
    embeddings, labels = torch.randn(16, 8, dtype=torch.float64), torch.randint(0, 4, (16,))
    loss_fn = make_losses(8, 4)[index]
    loss_fn.mix_weight = 0.25
    loss_fn.reducer.collect_stats = True
    for reducer in loss_fn.reducer.reducers.values():
        reducer.collect_stats = True
    mb = random_mixed_batch(embeddings, 1, 12, 4 if index == 2 else 16)
    total = loss_fn(embeddings, labels, mb)
    clean = loss_fn(embeddings, labels)
    mixed = soft_part(loss_fn, embeddings, labels, mb)
    assert total.item() == pytest.approx(clean.item() + 0.25 * mixed.item(), rel=1e-12)
    loss_fn(embeddings, labels, mb)
    recorded = {name: reducer.value for name, reducer in loss_fn.reducer.reducers.items()}
    mixed_names = [name for name in recorded if name.startswith("mixed_")]
    assert mixed_names and all(name[len("mixed_"):] in recorded for name in mixed_names)
    assert sum(recorded[n] for n in mixed_names) == pytest.approx(mixed.item(), rel=1e-12)
    assert sum(v for n, v in recorded.items() if n not in mixed_names) == pytest.approx(clean.item(), rel=1e-12)
    assert all(loss_fn.reducer.reducers[n].weight == 0.25 for n in mixed_names)


class CountingCosine(distances.CosineSimilarity):
    """Cosine similarity that lists the tensors it normalizes."""

    def __init__(self):
        super().__init__()
        self.normalized = []

    def normalize(self, embeddings, dim=1, **kwargs):
        self.normalized.append(embeddings)
        return super().normalize(embeddings, dim, **kwargs)


@pytest.mark.parametrize(
    "make_loss",
    [pml_metrix.MetrixMSLoss, pml_metrix.MetrixContrastiveLoss, partial(pml_metrix.MetrixProxyAnchorLoss, 3, 6)],
    ids=["ms", "contrastive", "proxy_anchor"],
)
def test_the_mixed_path_normalizes_each_tensor_once_and_restores_the_distance(make_loss):
    torch.manual_seed(0)
    embeddings, labels = torch.randn(12, 6, requires_grad=True), torch.randint(0, 3, (12,))
    distance = CountingCosine()
    loss_fn = make_loss(distance=distance)
    mb = random_mixed_batch(embeddings.detach(), 0, 8)
    loss_fn(embeddings, labels, mb).backward()
    inputs = [embeddings, mb.embeddings] + list(loss_fn.parameters())  # proxy anchor's proxies
    assert sorted(map(id, distance.normalized)) == sorted(map(id, inputs))
    assert "maybe_normalize" not in distance.__dict__  # the class's method again
    # a failure inside the block restores it too
    wrong_size = pml_metrix.MetrixProxyAnchorLoss(3, 5, distance=distance)
    with pytest.raises(ValueError, match="build the loss with embedding_size=6"):
        wrong_size(embeddings, labels, mb)
    assert "maybe_normalize" not in distance.__dict__


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
    pair_mask = torch.rand(4 if index == 2 else 10, 8, generator=g) < 0.7

    def total(emb):
        mixed = lam[:, None] * emb[source_index[:, 0]] + (1 - lam[:, None]) * emb[source_index[:, 1]]
        return loss_fn(emb, labels, pml_metrix.MixedBatch(mixed, source_index, lam, pair_mask))

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
    mb = random_mixed_batch(embeddings, 2, 12, 4 if index == 2 else 16)
    perm = torch.randperm(12)
    permuted = pml_metrix.MixedBatch(mb.embeddings[perm], mb.source_index[perm], mb.lam[perm], mb.pair_mask[:, perm])
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
