"""The Metrix losses on label sets (multi-label data): with one label per item they are the
class-label losses, bit for bit where stated; on real label sets they match the slow references
with s(L_a, L_r) as the pair labels."""

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pytorch_metric_learning import losses, reducers

import pml_metrix
from pml_metrix import SoftPairs
from pml_metrix.label_sets import LABEL_SIMILARITIES, get_label_similarity
from tests import reference
from tests.strategies import batches, pml_distances

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PAIR_LOSSES = {"ms": pml_metrix.MetrixMSLoss, "contrastive": pml_metrix.MetrixContrastiveLoss}


def one_hot(labels):
    return torch.nn.functional.one_hot(labels, int(labels.max()) + 1)


def value_and_grad(loss_fn, embeddings, *args):
    leaf = embeddings.clone().requires_grad_()
    loss = loss_fn(leaf, *args)
    loss.backward()
    return loss.detach(), leaf.grad


ANCHOR_LOSSES = {**PAIR_LOSSES, "supcon": pml_metrix.MetrixSupConLoss, "ntxent": pml_metrix.MetrixNTXentLoss}


@SETTINGS
@given(batch=batches(max_batch=32), which=st.sampled_from(sorted(ANCHOR_LOSSES)), name=st.sampled_from(sorted(LABEL_SIMILARITIES)),
       distance=pml_distances(), reducer=st.sampled_from([None, reducers.MeanReducer, reducers.SumReducer]))
def test_one_hot_label_sets_are_pml_s_loss_bit_for_bit(batch, which, name, distance, reducer):
    """With one label per item every similarity is the same-class relation, given as bool labels (the
    binary path): PML's loss with the class labels, value and gradient, bit for bit, under PML's
    default reducer and one that counts the anchors without a positive (their zero terms)."""
    embeddings, labels, _ = batch
    reducer_option = {} if reducer is None else {"reducer": reducer()}
    ours = ANCHOR_LOSSES[which](label_similarity=name, distance=distance, **reducer_option)
    theirs = ANCHOR_LOSSES[which](distance=distance, **reducer_option)
    got = value_and_grad(ours, embeddings, one_hot(labels))
    expected = value_and_grad(theirs, embeddings, labels)
    assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])
    soft_pairs = SoftPairs.from_label_sets(embeddings, one_hot(labels), name)
    assert soft_pairs.soft_labels.dtype == torch.bool
    assert torch.equal(soft_pairs.soft_labels, labels[:, None] == labels[None, :])


@settings(max_examples=30, deadline=None)
@given(batch=batches(max_batch=24), which=st.sampled_from(sorted(PAIR_LOSSES)), name=st.sampled_from(sorted(LABEL_SIMILARITIES)),
       strategy=st.sampled_from(["positive_negative", "anchor_negative", "negative_negative", "positive_positive"]))
def test_one_hot_label_sets_through_the_miner_give_the_same_plan_and_mixed_part(batch, which, name, strategy):
    embeddings, labels, seed = batch
    loss_fn = PAIR_LOSSES[which](label_similarity=name)

    def mixed_part(targets):
        miner = pml_metrix.MixupMiner(strategies=strategy, seed=seed, label_similarity=name)
        mixed_batch = miner(embeddings, targets)
        return mixed_batch, loss_fn(embeddings, None, loss_fn.mixed_soft_pairs(mixed_batch, targets))

    by_class, class_loss = mixed_part(labels)
    by_set, set_loss = mixed_part(one_hot(labels))
    assert torch.equal(by_class.source_index, by_set.source_index) and torch.equal(by_class.pair_mask, by_set.pair_mask)
    assert torch.equal(by_class.embeddings, by_set.embeddings) and torch.equal(set_loss, class_loss)
    assert torch.equal(loss_fn(embeddings, one_hot(labels), by_set), loss_fn(embeddings, labels, by_class))  # the whole loss


@st.composite
def label_set_batches(draw):
    batch_size = draw(st.integers(2, 16))
    num_labels = draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    embeddings = torch.randn(batch_size, 5, generator=g, dtype=torch.float64)
    sets = torch.rand(batch_size, num_labels, generator=g) < 0.4
    sets[torch.arange(batch_size), torch.randint(num_labels, (batch_size,), generator=g)] = True  # none empty
    return embeddings, sets, seed


@SETTINGS
@given(batch=label_set_batches(), name=st.sampled_from(sorted(LABEL_SIMILARITIES)), distance=pml_distances())
def test_the_clean_part_on_label_sets_is_the_soft_loss_over_the_batch_pairs(batch, name, distance):
    embeddings, sets, _ = batch
    mat = distance(embeddings, embeddings).tolist()
    soft_labels = get_label_similarity(name)(sets.double(), sets.double()).double().tolist()
    not_self = (~torch.eye(len(sets), dtype=torch.bool)).tolist()
    ms = pml_metrix.MetrixMSLoss(alpha=2.0, beta=10.0, base=0.5, distance=distance, label_similarity=name)
    expected = reference.ms_soft(mat, soft_labels, not_self, 2.0, 10.0, 0.5, distance.is_inverted)
    assert ms(embeddings, sets).item() == pytest.approx(expected, rel=1e-10, abs=1e-12)
    contrastive = pml_metrix.MetrixContrastiveLoss(pos_margin=0.1, neg_margin=1.0, distance=distance, label_similarity=name)
    expected = reference.contrastive_soft(mat, soft_labels, not_self, 0.1, 1.0, distance.is_inverted)
    assert contrastive(embeddings, sets).item() == pytest.approx(expected, rel=1e-10, abs=1e-12)


@SETTINGS
@given(batch=label_set_batches(), name=st.sampled_from(sorted(LABEL_SIMILARITIES)))
def test_a_mixed_batch_of_label_sets_is_clean_plus_weighted_mixed(batch, name):
    embeddings, sets, seed = batch
    loss_fn = pml_metrix.MetrixMSLoss(label_similarity=name, mix_weight=0.3)
    mixed_batch = pml_metrix.MixupMiner(strategies=["positive_negative", "anchor_negative"], seed=seed, label_similarity=name)(embeddings, sets)
    total = loss_fn(embeddings, sets, mixed_batch)
    clean = loss_fn(embeddings, sets)
    mixed = loss_fn(embeddings, None, loss_fn.mixed_soft_pairs(mixed_batch, sets))
    assert total.item() == pytest.approx(clean.item() + 0.3 * mixed.item(), rel=1e-12)


@settings(max_examples=20, deadline=None)
@given(batch=label_set_batches())
def test_the_attracting_ms_form_changes_the_mixed_part_alone_on_label_sets(batch):
    """mixed_form="attract" is the mixes' form: the clean part on label sets stays two-sided (with one
    label per item, PML's loss), and the mixed part is the attracting term."""
    embeddings, sets, seed = batch
    attract, two_sided = pml_metrix.MetrixMSLoss(mixed_form="attract"), pml_metrix.MetrixMSLoss()
    assert torch.equal(attract(embeddings, sets), two_sided(embeddings, sets))
    mixed_batch = pml_metrix.MixupMiner(strategies=["positive_negative", "anchor_negative"], seed=seed)(embeddings, sets)
    mixed = attract(embeddings, None, attract.mixed_soft_pairs(mixed_batch, sets))
    expected = two_sided(embeddings, sets) + 0.4 * mixed
    assert attract(embeddings, sets, mixed_batch).item() == pytest.approx(expected.item(), rel=1e-12)


def test_gradcheck_through_the_label_set_loss():
    g = torch.Generator().manual_seed(0)
    embeddings = torch.randn(8, 4, generator=g, dtype=torch.float64, requires_grad=True)
    sets = torch.tensor([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 1, 1], [0, 0, 1], [1, 0, 1], [1, 1, 1], [0, 1, 0]])
    plan = pml_metrix.MixupMiner(strategies=["positive_negative", "anchor_negative"], seed=1).plan(embeddings.detach(), sets)
    for loss_fn in (pml_metrix.MetrixMSLoss(), pml_metrix.MetrixContrastiveLoss()):
        assert torch.autograd.gradcheck(lambda emb: loss_fn(emb, sets, plan.mixed_batch(plan.mix(emb))), (embeddings,))


def test_the_embedding_regularizer_enters_the_clean_part_of_label_sets():
    from pytorch_metric_learning.regularizers import LpRegularizer

    embeddings, sets = torch.randn(6, 4), torch.tensor([[1, 0], [1, 1], [0, 1], [1, 0], [0, 1], [1, 1]])
    plain = pml_metrix.MetrixMSLoss()(embeddings, sets)
    regularized = pml_metrix.MetrixMSLoss(embedding_regularizer=LpRegularizer(), embedding_reg_weight=0.5)(embeddings, sets)
    expected = plain + 0.5 * embeddings.norm(dim=1).mean()
    assert regularized.item() == pytest.approx(expected.item(), rel=1e-6)


@settings(max_examples=30, deadline=None)
@given(batch=batches(max_batch=24), shown_to=st.sampled_from(["matching_anchors", "drawing_anchor"]),
       strategy=st.sampled_from(["positive_negative", "anchor_negative", "negative_negative", "positive_positive"]))
def test_one_hot_label_sets_in_proxy_anchor_are_the_class_labels_bit_for_bit(batch, shown_to, strategy):
    """A proxy per label: with one label per item the plan, the loss and its gradients (the proxies'
    too) are those of the class labels, bit for bit."""
    embeddings, labels, seed = batch
    num_classes = int(labels.max()) + 2  # one proxy without items
    results = []
    for targets in (labels, torch.nn.functional.one_hot(labels, num_classes)):
        torch.manual_seed(seed)
        loss_fn = pml_metrix.MetrixProxyAnchorLoss(num_classes, embeddings.shape[1])
        miner = pml_metrix.MixupMiner(num_classes=num_classes, strategies=strategy, shown_to=shown_to, seed=seed)
        mixed_batch = miner(embeddings, targets)
        leaf = embeddings.clone().requires_grad_()
        loss = loss_fn(leaf, targets, mixed_batch)
        loss.backward()
        results.append((loss.detach(), leaf.grad, loss_fn.proxies.grad, mixed_batch.source_index, mixed_batch.pair_mask))
    for by_set, by_class in zip(*results):
        assert torch.equal(by_set, by_class)


@SETTINGS
@given(batch=label_set_batches(), distance=pml_distances())
def test_proxy_anchor_on_label_sets_takes_each_label_s_items_as_its_proxy_s_positives(batch, distance):
    """Clean part: proxy c's positives are the items with label c (the reference over proxies x
    items with those 0/1 labels); mixes: ``lam [c in L_i] + (1 - lam) [c in L_j]``."""
    embeddings, sets, seed = batch
    num_labels = sets.shape[1]
    torch.manual_seed(seed)
    loss_fn = pml_metrix.MetrixProxyAnchorLoss(num_labels, embeddings.shape[1], alpha=8.0, distance=distance)
    mat = distance(loss_fn.proxies.data.double(), embeddings)
    membership = sets.T.double()
    everything = torch.ones_like(membership, dtype=torch.bool)
    expected = reference.proxy_anchor_soft(mat.tolist(), membership.tolist(), everything.tolist(), 8.0, 0.1, distance.is_inverted)
    assert loss_fn(embeddings, sets).item() == pytest.approx(expected, rel=1e-10, abs=1e-12)
    mixed_batch = pml_metrix.MixupMiner(num_classes=num_labels, strategies=["positive_negative", "anchor_negative"], seed=seed)(embeddings, sets)
    soft_labels = loss_fn.mixed_soft_pairs(mixed_batch, sets).soft_labels
    for k, ((i, j), lam) in enumerate(zip(mixed_batch.source_index.tolist(), mixed_batch.lam.tolist())):
        for c in range(num_labels):
            assert soft_labels[c, k].item() == pytest.approx(lam * float(sets[i, c]) + (1 - lam) * float(sets[j, c]), abs=1e-12)


def test_label_sets_are_refused_where_they_have_no_meaning():
    embeddings, sets = torch.randn(6, 4), torch.tensor([[1, 0], [1, 1], [0, 1], [1, 0], [0, 1], [1, 1]])
    with pytest.raises(ValueError, match="label sets over 2 labels, but the loss has num_classes=3 proxies"):
        pml_metrix.MetrixProxyAnchorLoss(3, 4)(embeddings, sets)
    pairs = (torch.tensor([0]), torch.tensor([1]), torch.tensor([0]), torch.tensor([2]))
    with pytest.raises(ValueError, match="cannot be used with them"):
        pml_metrix.MetrixMSLoss()(embeddings, sets, pairs)
    with pytest.raises(ValueError, match="label_similarity must be one of"):
        pml_metrix.MetrixContrastiveLoss(label_similarity="overlap")
    with pytest.raises(ValueError, match=r"must have shape \(6, C\)"):
        pml_metrix.MetrixMSLoss()(embeddings, sets[:5])
    assert losses.MultiSimilarityLoss  # PML's own stays as it is: it takes class labels only


def test_a_step_on_label_sets_checks_their_values_and_computes_their_similarities_once_each(monkeypatch):
    """The miner and the loss each check the label sets' values once (by the similarity they compute),
    and the loss computes the batch's B x B similarities once for its clean part and its mixes."""
    calls = []
    original_check, original_jaccard = pml_metrix.label_sets.check_label_set_values, LABEL_SIMILARITIES["jaccard"]
    monkeypatch.setattr(pml_metrix.label_sets, "check_label_set_values", lambda *a, **k: calls.append("check") or original_check(*a, **k))
    monkeypatch.setitem(LABEL_SIMILARITIES, "jaccard", lambda *a: calls.append("jaccard") or original_jaccard(*a))
    g = torch.Generator().manual_seed(0)
    sets = torch.rand(12, 5, generator=g) < 0.4
    sets[torch.arange(12), torch.randint(5, (12,), generator=g)] = True
    embeddings = torch.randn(12, 8, generator=g)
    mixed_batch = pml_metrix.MixupMiner(seed=0, negative_threshold=0.2)(embeddings, sets)
    assert calls == ["jaccard", "check"]  # the miner's positives and negatives
    calls.clear()
    pml_metrix.MetrixContrastiveLoss()(embeddings, sets, mixed_batch)
    assert calls == ["jaccard", "check"]


def test_the_loss_checks_label_sets_as_given_before_any_cast_to_its_dtype():
    """A float64 value just off 1, which float32 would round to 1, and complex label sets are refused
    by a float32 loss, as by the similarity itself."""
    g = torch.Generator().manual_seed(1)
    embeddings = torch.randn(4, 8, generator=g)
    sets = torch.tensor([[1, 0, 0], [1, 1, 0], [0, 1, 1], [0, 0, 1]], dtype=torch.float64)
    off = sets.clone()
    off[0, 0] = 1 + 1e-12
    loss_fn = pml_metrix.MetrixContrastiveLoss()
    mixed_batch = pml_metrix.MixupMiner(seed=0, negative_threshold=0.2)(embeddings, sets)
    for call in (lambda: loss_fn(embeddings, off), lambda: loss_fn(embeddings, off, mixed_batch),
                 lambda: mixed_batch.soft_pairs(off)):
        with pytest.raises(ValueError, match="hold only 0 and 1"):
            call()
    with pytest.raises(ValueError, match="must be label sets"):
        loss_fn(embeddings, sets.to(torch.complex64))
    assert torch.equal(loss_fn(embeddings, sets), loss_fn(embeddings, sets.float()))  # 0 and 1: the same in any dtype
