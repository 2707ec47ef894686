"""Positivity analysis: what each loss guarantees under positive-negative mixing, the gradient
against finite differences, binning by lam, the plot, and bad input.

Under positive-negative mixing (c(i) = c(a) != c(j)) the soft label is y = lam. What holds for
every batch, derived from the loss terms (s a similarity, d a distance):

- lam = 1: the pair is only in the positive sum, whose term falls as s rises (rises with d), so it
  is a positive for all three losses (contrastive: ``d [d - m_pos]_+ / d d >= 0``).
- lam = 0: the pair is only in the negative sum. MS and proxy anchor: ``exp`` terms under a
  strictly increasing ``log(1 + t)``, so ``d loss / d s > 0``: never a positive. Contrastive:
  ``d [m_neg - d]_+ / d d`` is -1 inside the margin and 0 beyond it, so positive iff ``d >= m_neg``.
- MS with one mixed item per anchor: with ``u = y exp(-alpha (s - base))`` and
  ``w = (1 - y) exp(beta (s - base))``, ``d loss / d s`` is proportional to ``-u/(1+u) + w/(1+w)``,
  so v is a positive iff ``log(lam / (1 - lam)) >= (alpha + beta)(s - base)`` (the poster's formula).
- Holding the pair matrix fixed (same mixed embeddings) with every y in (0, 1) and one mixed item
  per anchor, raising lam never turns a positive into a negative: the divisors (pairs with non-zero
  contrastive terms, proxies with positive mass) do not change, the positive pull grows with y and
  the negative push shrinks. Share-per-bin monotonicity on a random batch is not guaranteed (S
  varies from pair to pair), so it is not tested.
"""

import math
import dataclasses
import pytest
import torch
from pytorch_metric_learning import distances, losses

import pml_metrix
from pml_metrix.analysis import (
    PairPositivity,
    gradient_share,
    pair_positivity,
    positive_share_by_lam,
)

NUM_CLASSES, DIM, BATCH = 4, 5, 24
LOSS_NAMES = ["ms", "contrastive", "proxy_anchor"]
SOFTMAX_NAMES = ["supcon", "ntxent"]


def make_loss(name: str):
    torch.manual_seed(0)
    if name == "ms":
        return pml_metrix.MetrixMSLoss()
    if name == "contrastive":
        return pml_metrix.MetrixContrastiveLoss()
    if name == "supcon":
        return pml_metrix.MetrixSupConLoss()
    if name == "ntxent":
        return pml_metrix.MetrixNTXentLoss()
    return pml_metrix.MetrixProxyAnchorLoss(NUM_CLASSES, DIM)


def batch(dtype=torch.float32, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(BATCH, DIM, generator=g, dtype=torch.float64).to(dtype), torch.arange(BATCH) % NUM_CLASSES


def anchor_labels_of(loss_fn, labels):
    """The anchors' class labels: one per class for proxy anchor's proxies, the batch's otherwise."""
    if isinstance(loss_fn, pml_metrix.MetrixProxyAnchorLoss):
        return torch.arange(loss_fn.num_classes)
    return labels


def positive_negative_mixes(embeddings, labels, anchor_labels, lam, seed: int) -> pml_metrix.MixedBatch:
    """Mixed item k = lam_k e_i + (1 - lam_k) e_j for anchor k % A, with c(i) = c(anchor) != c(j);
    the mask gives each mixed item to that one anchor (len(lam) / A items per anchor)."""
    g = torch.Generator().manual_seed(seed)
    num_anchors = len(anchor_labels)
    anchor = torch.arange(len(lam)) % num_anchors
    same = anchor_labels[anchor, None] == labels[None, :]
    i = torch.multinomial(same.double(), 1, generator=g).squeeze(1)
    j = torch.multinomial((~same).double(), 1, generator=g).squeeze(1)
    lam_col = lam.to(embeddings.dtype)[:, None]
    mixed = lam_col * embeddings[i] + (1 - lam_col) * embeddings[j]
    pair_mask = torch.arange(num_anchors)[:, None] == anchor[None, :]
    num_classes = None if anchor_labels is labels else num_anchors  # anchors of one class each: proxies
    return pml_metrix.MixedBatch(mixed, torch.stack([i, j], 1), lam, pair_mask, num_classes=num_classes)


def anchor_embeddings(loss_fn, embeddings):
    """What the rows of S are: the batch, or the proxies for proxy anchor."""
    if isinstance(loss_fn, pml_metrix.MetrixProxyAnchorLoss):
        return loss_fn.proxies.detach().to(embeddings.dtype)
    return embeddings


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_pure_positives_are_positives_and_pure_negatives_follow_the_loss(name):
    loss_fn = make_loss(name)
    embeddings, labels = batch()
    anchor_labels = anchor_labels_of(loss_fn, labels)
    g = torch.Generator().manual_seed(1)
    lam = torch.rand(3 * len(anchor_labels), generator=g)
    lam[torch.rand(len(lam), generator=g) < 0.6] = 1.0
    lam[torch.rand(len(lam), generator=g) < 0.4] = 0.0
    mixed_batch = positive_negative_mixes(embeddings, labels, anchor_labels, lam, seed=2)
    result = pair_positivity(loss_fn, embeddings, labels, mixed_batch)
    at_one, at_zero = result.lam == 1, result.lam == 0
    assert at_one.any() and at_zero.any()
    assert torch.equal(result.soft_label, result.lam.double())  # positive-negative mixing: y = lam
    assert result.is_positive[at_one].all()
    if name == "contrastive":
        mat = loss_fn.distance(embeddings.double(), mixed_batch.embeddings.double())
        beyond_margin = mat[result.anchor_index, result.mixed_index] >= loss_fn.neg_margin
        assert beyond_margin[at_zero].any() and not beyond_margin[at_zero].all()
        assert torch.equal(result.is_positive[at_zero], beyond_margin[at_zero])
    else:
        assert not result.is_positive[at_zero].any()


def test_ms_positivity_follows_the_closed_form_threshold():
    alpha, beta, base = 2.0, 10.0, 0.5
    loss_fn = pml_metrix.MetrixMSLoss(alpha=alpha, beta=beta, base=base)
    embeddings, labels = batch(torch.float64)
    lam = torch.rand(BATCH, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    mixed_batch = positive_negative_mixes(embeddings, labels, labels, lam, seed=4)
    result = pair_positivity(loss_fn, embeddings, labels, mixed_batch)
    assert torch.equal(result.anchor_index, torch.arange(BATCH))
    sim = distances.CosineSimilarity()(embeddings, mixed_batch.embeddings).diagonal()
    margin = torch.log(lam / (1 - lam)) - (alpha + beta) * (sim - base)
    clear = margin.abs() > 1e-9
    assert clear.all()
    assert result.is_positive.any() and not result.is_positive.all()
    assert torch.equal(result.is_positive, margin >= 0)


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_holding_the_pair_matrix_raising_lam_never_loses_a_positive(name):
    loss_fn = make_loss(name)
    embeddings, labels = batch(torch.float64, seed=5)
    anchor_labels = anchor_labels_of(loss_fn, labels)
    g = torch.Generator().manual_seed(6)
    lam = 0.02 + 0.96 * torch.rand(len(anchor_labels), generator=g, dtype=torch.float64)
    low = positive_negative_mixes(embeddings, labels, anchor_labels, lam, seed=7)
    previous = pair_positivity(loss_fn, embeddings, labels, low).is_positive
    for step in range(4):
        lam = lam + (0.98 - lam) * torch.rand(len(lam), generator=g, dtype=torch.float64)
        raised = dataclasses.replace(low.plan, lam=lam).mixed_batch(low.embeddings)
        current = pair_positivity(loss_fn, embeddings, labels, raised).is_positive
        assert (current | ~previous).all(), f"step {step}: a positive became a negative"
        previous = current
    assert previous.any()


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_gradient_matches_a_finite_difference_of_the_mixed_loss(name):
    """Each mixed item has one anchor, so moving it changes the loss only through S[a, v]."""
    loss_fn = make_loss(name)
    embeddings, labels = batch(torch.float64, seed=8)
    anchor_labels = anchor_labels_of(loss_fn, labels)
    lam = torch.rand(2 * len(anchor_labels), generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    mixed_batch = positive_negative_mixes(embeddings, labels, anchor_labels, lam, seed=10)
    result = pair_positivity(loss_fn, embeddings, labels, mixed_batch)
    pair = 3
    a, v = int(result.anchor_index[pair]), int(result.mixed_index[pair])
    direction = torch.randn(DIM, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    anchors = anchor_embeddings(loss_fn, embeddings)

    def loss_and_pair_value(step):
        moved = mixed_batch.embeddings.clone()
        moved[v] += step * direction
        total = loss_fn(embeddings, labels, mixed_batch.plan.mixed_batch(moved))
        return total.item(), loss_fn.distance(anchors, moved)[a, v].item()

    (loss_up, value_up), (loss_down, value_down) = loss_and_pair_value(1e-5), loss_and_pair_value(-1e-5)
    finite_difference = (loss_up - loss_down) / (loss_fn.mix_weight * (value_up - value_down))
    assert result.gradient[pair].item() != 0
    assert result.gradient[pair].item() == pytest.approx(finite_difference, rel=1e-5)


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_one_row_per_masked_pair_with_its_plan_labels_and_sign(name):
    loss_fn = make_loss(name)
    embeddings, labels = batch()
    g = torch.Generator().manual_seed(12)
    num_mixed = 30
    source_index = torch.randint(0, BATCH, (num_mixed, 2), generator=g)
    lam = torch.rand(num_mixed, generator=g)
    mixed = lam[:, None] * embeddings[source_index[:, 0]] + (1 - lam[:, None]) * embeddings[source_index[:, 1]]
    num_anchors = NUM_CLASSES if name == "proxy_anchor" else BATCH
    pair_mask = torch.rand(num_anchors, num_mixed, generator=g) < 0.5
    num_classes = NUM_CLASSES if name == "proxy_anchor" else None
    mixed_batch = pml_metrix.MixedBatch(mixed, source_index, lam, pair_mask, num_classes=num_classes)
    result = pair_positivity(loss_fn, embeddings, labels, mixed_batch)
    anchor_index, mixed_index = pair_mask.nonzero(as_tuple=True)
    assert torch.equal(result.anchor_index, anchor_index) and torch.equal(result.mixed_index, mixed_index)
    assert torch.equal(result.lam, lam[mixed_index])
    soft_labels = loss_fn.mixed_soft_pairs(mixed_batch, labels).soft_labels.double()
    assert torch.allclose(result.soft_label, soft_labels[anchor_index, mixed_index], rtol=0, atol=1e-7)
    mat = loss_fn.distance(anchor_embeddings(loss_fn, embeddings).double(), mixed.double())
    assert torch.allclose(result.distance, mat[anchor_index, mixed_index], rtol=0, atol=1e-12)
    along_similarity = result.gradient if result.is_inverted else -result.gradient
    assert result.is_inverted == (name != "contrastive")
    assert torch.equal(result.is_positive, along_similarity <= 0)
    assert result.is_positive.any() and not result.is_positive.all()
    with torch.no_grad():
        assert torch.equal(pair_positivity(loss_fn, embeddings, labels, mixed_batch).gradient, result.gradient)
    if name == "proxy_anchor":
        assert loss_fn.proxies.dtype == torch.float32  # the analysis ran on a copy


@pytest.mark.parametrize("name", SOFTMAX_NAMES)
def test_softmax_losses_analyse_every_pair_their_softmax_shows(name):
    """SupCon and NT-Xent score each anchor's masked mixes in a softmax beside every pure negative
    (y = 0) of the batch's mixes: those pairs are analysed too. A pure negative is only ever in the
    denominators, so it is pushed away (here every anchor has a positive mix; an anchor without one
    has no loss, and its pairs a zero gradient)."""
    loss_fn = make_loss(name)
    embeddings, labels = batch(seed=13)
    g = torch.Generator().manual_seed(14)
    source_index = torch.randint(0, BATCH, (30, 2), generator=g)
    lam = torch.rand(30, generator=g)
    mixed = lam[:, None] * embeddings[source_index[:, 0]] + (1 - lam[:, None]) * embeddings[source_index[:, 1]]
    pair_mask = torch.rand(BATCH, 30, generator=g) < 0.3
    mixed_batch = pml_metrix.MixedBatch(mixed, source_index, lam, pair_mask)
    result = pair_positivity(loss_fn, embeddings, labels, mixed_batch)
    soft_labels = pml_metrix.MetrixMSLoss().mixed_soft_pairs(mixed_batch, labels).soft_labels
    anchor_index, mixed_index = (pair_mask | (soft_labels == 0)).nonzero(as_tuple=True)
    assert torch.equal(result.anchor_index, anchor_index) and torch.equal(result.mixed_index, mixed_index)
    assert torch.allclose(result.soft_label, soft_labels[anchor_index, mixed_index].double(), rtol=0, atol=1e-7)
    assert result.is_inverted
    assert (pair_mask & (soft_labels > 0)).any(dim=1).all()  # every anchor has a positive mix
    pure_negative = result.soft_label == 0
    assert pure_negative.any() and (result.gradient[pure_negative] > 0).all()
    assert result.is_positive.any()


@pytest.mark.parametrize("name", ["contrastive", "ms"])
def test_label_sets_give_each_pair_its_mixed_set_similarity(name):
    """The positivity of mixes of multi-label items: each pair's soft label is
    lam s(L_a, L_i) + (1 - lam) s(L_a, L_j) by Jaccard, computed by brute force."""
    loss_fn = make_loss(name)
    embeddings, _ = batch()
    g = torch.Generator().manual_seed(21)
    sets = torch.rand(BATCH, 5, generator=g) < 0.4
    sets[:, 0] |= ~sets.any(1)  # none empty
    mixed_batch = pml_metrix.MixupMiner(seed=3, negative_threshold=0.3)(embeddings, sets)
    result = pair_positivity(loss_fn, embeddings, sets, mixed_batch)
    assert len(result.lam) > 0
    shared = sets.double() @ sets.double().T
    jaccard = shared / (sets.sum(1, keepdim=True) + sets.sum(1) - shared)
    first, second = mixed_batch.source_index[result.mixed_index].unbind(1)
    lam = result.lam.double()
    expected = lam * jaccard[result.anchor_index, first] + (1 - lam) * jaccard[result.anchor_index, second]
    assert torch.allclose(result.soft_label, expected, rtol=0, atol=1e-12)


def test_pairs_no_contrastive_hinge_touches_have_zero_gradient_and_count_as_positives():
    loss_fn = pml_metrix.MetrixContrastiveLoss(pos_margin=10.0, neg_margin=0.0)
    embeddings, labels = batch()
    lam = torch.rand(BATCH, generator=torch.Generator().manual_seed(13))
    result = pair_positivity(loss_fn, embeddings, labels, positive_negative_mixes(embeddings, labels, labels, lam, 14))
    assert torch.equal(result.gradient, torch.zeros(BATCH, dtype=torch.float64))
    assert result.is_positive.all()


def test_a_far_pure_negative_stays_a_negative_with_float32_embeddings():
    """With the reference MS settings a pure negative opposite its anchor has a push of about
    exp(-beta (1 + base)) = exp(-134): zero in float32, which the <= 0 rule would call positive."""
    loss_fn = pml_metrix.MetrixMSLoss(alpha=2.0, beta=75.66, base=0.77)
    embeddings = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    labels = torch.tensor([0, 0, 1, 1])
    mixed_batch = pml_metrix.MixedBatch(
        embeddings[[2]], torch.tensor([[1, 2]]), torch.zeros(1), torch.tensor([[True], [False], [False], [False]])
    )
    result = pair_positivity(loss_fn, embeddings, labels, mixed_batch)
    assert result.distance.item() == -1.0 and result.soft_label.item() == 0.0
    assert 0 < result.gradient.item() < 1e-50
    assert not result.is_positive.item()


def hand_made_positivity(lam, is_positive):
    lam = torch.tensor(lam, dtype=torch.float64)
    zeros = torch.zeros(len(lam), dtype=torch.float64)
    index = torch.arange(len(lam))
    return PairPositivity(index, index, lam, lam, zeros, zeros, torch.tensor(is_positive), True)


@pytest.mark.parametrize("name", LOSS_NAMES + SOFTMAX_NAMES)
def test_gradient_share_splits_the_loss_gradient_into_its_two_parts(name):
    """g_clean + g_mixed is the gradient of the loss's forward; the weight scales g_mixed alone."""
    torch.manual_seed(0)
    model = torch.nn.Linear(DIM, DIM).double()
    x, labels = batch(torch.float64)
    loss_fn = make_loss(name).double()
    miner = pml_metrix.MixupMiner(num_classes=NUM_CLASSES if name == "proxy_anchor" else None, seed=0)
    embeddings = model(x)
    mixed_batch = miner(embeddings, labels)  # embedding level: the mixes are in the model's graph
    share = gradient_share(loss_fn, embeddings, labels, mixed_batch, model.parameters())
    whole = torch.autograd.grad(loss_fn(embeddings, labels, mixed_batch), list(model.parameters()), retain_graph=True)
    whole = torch.cat([g.flatten() for g in whole])
    expected = share.clean_norm**2 + share.mixed_norm**2 + 2 * share.cosine * share.clean_norm * share.mixed_norm
    assert whole.norm().item() ** 2 == pytest.approx(expected, rel=1e-9)
    assert 0 < share.mixed_share < 1
    loss_fn.mix_weight = 0.8  # twice the default 0.4
    doubled = gradient_share(loss_fn, embeddings, labels, mixed_batch, model.parameters())
    assert doubled.mixed_norm == pytest.approx(2 * share.mixed_norm, rel=1e-9)
    assert doubled.clean_norm == pytest.approx(share.clean_norm, rel=1e-12) and doubled.cosine == pytest.approx(share.cosine)


def test_a_gradient_share_of_no_gradient_is_nan():
    """Neither part moves the parameters (every contrastive hinge inactive): no share, not a division by zero."""
    torch.manual_seed(0)
    model = torch.nn.Linear(DIM, DIM).double()
    x, labels = batch(torch.float64)
    embeddings = model(x)
    loss_fn = pml_metrix.MetrixContrastiveLoss(pos_margin=100.0, neg_margin=0.0)
    share = gradient_share(loss_fn, embeddings, labels, pml_metrix.MixupMiner(seed=0)(embeddings, labels), model.parameters())
    assert share.clean_norm == share.mixed_norm == 0 and math.isnan(share.mixed_share) and math.isnan(share.cosine)


def test_share_per_lam_bin_with_closed_right_end_and_empty_bins():
    positivity = hand_made_positivity(
        [0.0, 0.1, 0.24, 0.25, 0.3, 0.8, 1.0, 1.0], [False, True, False, True, True, False, True, True]
    )
    share = positive_share_by_lam(positivity, num_bins=4)
    assert torch.equal(share.edges, torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0], dtype=torch.float64))
    assert share.count.tolist() == [3, 2, 0, 3]
    assert share.share[[0, 1, 3]].tolist() == pytest.approx([1 / 3, 1.0, 2 / 3])
    assert share.share[2].isnan()


def test_share_per_bin_on_pure_mixes_is_zero_then_one():
    loss_fn = pml_metrix.MetrixMSLoss()
    embeddings, labels = batch()
    lam = (torch.arange(2 * BATCH) % 2).float()
    mixed_batch = positive_negative_mixes(embeddings, labels, labels, lam, seed=15)
    share = positive_share_by_lam(pair_positivity(loss_fn, embeddings, labels, mixed_batch), num_bins=2)
    assert share.share.tolist() == [0.0, 1.0] and share.count.tolist() == [BATCH, BATCH]


def bad_inputs():
    embeddings, labels = batch()
    lam = torch.rand(BATCH, generator=torch.Generator().manual_seed(18))
    good = positive_negative_mixes(embeddings, labels, labels, lam, seed=19)
    no_pairs = pml_metrix.MixedBatch(good.embeddings, good.source_index, lam, torch.zeros(BATCH, BATCH, dtype=torch.bool))
    no_items = pml_metrix.MixedBatch(torch.zeros(0, DIM), torch.zeros(0, 2, dtype=torch.long), torch.zeros(0))
    wrong_dim = pml_metrix.MixedBatch(good.embeddings[:, :3], good.source_index, lam)
    ms = pml_metrix.MetrixMSLoss()
    share = positive_share_by_lam(pair_positivity(ms, embeddings, labels, good))
    return {
        "no masked pair": (lambda: pair_positivity(ms, embeddings, labels, no_pairs), "no \\(anchor, mixed item\\) pair"),
        "no mixed item": (lambda: pair_positivity(ms, embeddings, labels, no_items), "no \\(anchor, mixed item\\) pair"),
        "pml loss": (lambda: pair_positivity(losses.MultiSimilarityLoss(), embeddings, labels, good), "Metrix loss"),
        "not a mixed batch": (
            lambda: pair_positivity(ms, embeddings, labels, pml_metrix.SoftPairs(good.embeddings, lam[None].expand(BATCH, -1))),
            "MixedBatch",
        ),
        "no labels": (lambda: pair_positivity(ms, embeddings, None, good), "labels are required"),
        "dim mismatch": (lambda: pair_positivity(ms, embeddings, labels, wrong_dim), "dim 3"),
        "mask rows": (
            lambda: pair_positivity(pml_metrix.MetrixProxyAnchorLoss(NUM_CLASSES, DIM), embeddings, labels, good),
            "build the MixupMiner with num_classes",
        ),
        "zero bins": (lambda: positive_share_by_lam(pair_positivity(ms, embeddings, labels, good), 0), "num_bins"),
        "not positivity": (lambda: positive_share_by_lam(share), "PairPositivity"),
        "gradient of a pml loss": (
            lambda: gradient_share(losses.MultiSimilarityLoss(), embeddings, labels, good, [torch.ones(1, requires_grad=True)]),
            "Metrix loss",
        ),
        "gradient of nothing": (lambda: gradient_share(ms, embeddings, labels, good, []), "nothing to differentiate"),
    }


BAD_INPUTS = [
    "no masked pair", "no mixed item", "pml loss", "not a mixed batch", "no labels", "dim mismatch",
    "mask rows", "zero bins", "not positivity", "gradient of a pml loss",
    "gradient of nothing",
]


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_raises_a_value_error_that_says_what_is_wrong(case):
    call, message = bad_inputs()[case]
    with pytest.raises(ValueError, match=message):
        call()
