"""MixupMiner: plans as promised (hypothesis), seeds, degenerate batches, PML trainers."""

import logging

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pytorch_metric_learning import miners, trainers

import pml_metrix
from pml_metrix.miners import MixupMiner
from pml_metrix.names import STRATEGIES
from tests.test_mixing import class_pair_type_masks


@st.composite
def miner_cases(draw):
    batch_size = draw(st.integers(1, 40))
    num_classes = draw(st.integers(1, 8))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, num_classes, (batch_size,), generator=g)
    embeddings = torch.randn(batch_size, 6, generator=g)
    strategies = draw(st.lists(st.sampled_from(STRATEGIES), min_size=1, max_size=4, unique=True))
    kwargs = dict(
        strategies=strategies,
        mixes=draw(st.sampled_from(["per_anchor", "per_batch"])),
        num_mixes=draw(st.integers(1, 4)),
        negatives=draw(st.sampled_from(["random", "hardest"])),
        alpha=draw(st.sampled_from([0.4, 2.0])),
        seed=seed,
    )
    return embeddings, labels, kwargs


def eligible_anchors(labels, strategy):
    same = labels[:, None] == labels[None, :]
    pos = (same.sum(1) - 1)
    neg = (~same).sum(1)
    need = {
        "positive_negative": (pos >= 1) & (neg >= 1),
        "anchor_negative": neg >= 1,
        "negative_negative": neg >= 2,
        "positive_positive": pos >= 2,
    }[strategy]
    return int(need.sum())


@settings(max_examples=100, deadline=None)
@given(case=miner_cases())
def test_plans_keep_their_promises(case):
    embeddings, labels, kwargs = case
    miner = MixupMiner(**kwargs)
    plan = miner.plan(embeddings, labels)
    i, j = plan.source_index[:, 0], plan.source_index[:, 1]
    assert ((plan.lam >= 0) & (plan.lam <= 1)).all()
    assert (i != j).all()
    # counts as asked
    expected = 0
    for strategy in kwargs["strategies"]:
        eligible = eligible_anchors(labels, strategy)
        per = kwargs["num_mixes"]
        expected += eligible * per if kwargs["mixes"] == "per_anchor" else (per if eligible else 0)
    assert len(plan) == expected
    # every masked pair has a type its strategies promise, and every mix is shown to some anchor
    masks = class_pair_type_masks(labels, labels, plan.source_index, torch.arange(len(labels)))
    promised = torch.stack([masks[s] for s in kwargs["strategies"]]).any(0)
    assert torch.equal(plan.pair_mask, promised)
    assert plan.pair_mask.any(0).all()
    # soft labels in [0, 1]
    mb = plan.mixed_batch(plan.mix(embeddings))
    soft = mb.soft_pairs(labels).soft_labels
    assert ((soft >= 0) & (soft <= 1)).all()
    # same seed, same plan
    again = MixupMiner(**kwargs).plan(embeddings, labels)
    assert torch.equal(plan.source_index, again.source_index) and torch.equal(plan.lam, again.lam)


def test_positive_negative_pairs_per_anchor_type():
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    plan = MixupMiner(seed=0).plan(torch.randn(6, 4), labels)
    i, j = plan.source_index.T
    assert (labels[i] != labels[j]).all()
    anchors, mixes = torch.where(plan.pair_mask)
    assert (labels[anchors] == labels[i[mixes]]).all() and (anchors != i[mixes]).all()


def test_hardest_negative_is_the_most_similar_one():
    embeddings = torch.tensor([[1.0, 0.0], [1.0, 0.1], [0.9, 0.2], [-1.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([0, 0, 1, 2, 3])
    plan = MixupMiner(strategies="anchor_negative", negatives="hardest", num_mixes=2, seed=0).plan(embeddings, labels)
    anchor0 = plan.source_index[plan.source_index[:, 0] == 0]
    assert anchor0[:, 1].tolist() == [2, 4]  # cosine order among the negatives of item 0


def test_different_seeds_give_different_plans_and_no_seed_uses_the_global_generator():
    embeddings, labels = torch.randn(20, 4), torch.arange(20) % 4
    a = MixupMiner(seed=1).plan(embeddings, labels)
    b = MixupMiner(seed=2).plan(embeddings, labels)
    assert not torch.equal(a.lam, b.lam)
    torch.manual_seed(5)
    c = MixupMiner().plan(embeddings, labels)
    torch.manual_seed(5)
    d = MixupMiner().plan(embeddings, labels)
    assert torch.equal(c.source_index, d.source_index) and torch.equal(c.lam, d.lam)


@pytest.mark.parametrize("labels", [torch.zeros(5, dtype=torch.long), torch.zeros(1, dtype=torch.long)])
def test_one_class_or_one_item_gives_no_mixes_and_the_clean_loss(labels):
    embeddings = torch.randn(len(labels), 4, requires_grad=True)
    mixed = MixupMiner()(embeddings, labels)
    assert len(mixed.lam) == 0
    loss_fn = pml_metrix.MetrixMSLoss()
    assert torch.equal(loss_fn(embeddings, labels, mixed), loss_fn(embeddings, labels))


def test_mixes_carry_gradients_and_the_inner_miner_tuple():
    embeddings, labels = torch.randn(16, 4, requires_grad=True), torch.arange(16) % 4
    inner = miners.MultiSimilarityMiner()
    mixed = MixupMiner(inner_miner=inner, seed=0)(embeddings, labels)
    assert mixed.embeddings.requires_grad
    expected = inner(embeddings, labels)
    assert all(torch.equal(a, b) for a, b in zip(mixed.indices_tuple, expected))
    pml_metrix.MetrixMSLoss()(embeddings, labels, mixed).backward()
    assert embeddings.grad.abs().sum() > 0


def test_proxy_masks_have_one_row_per_class():
    embeddings, labels = torch.randn(12, 4), torch.arange(12) % 3
    mixed = MixupMiner(num_classes=5, seed=0)(embeddings, labels)
    assert mixed.pair_mask.shape == (5, len(mixed.lam))
    assert not mixed.pair_mask[3:].any()  # classes absent from the batch see nothing
    pml_metrix.MetrixProxyAnchorLoss(5, 4)(embeddings, labels, mixed)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(strategies="mixup"), "strategies must be among"),
        (dict(alpha=0), "alpha must be a finite number > 0"),
        (dict(mixes="sometimes"), "mixes must be"),
        (dict(num_mixes=0), "num_mixes must be a positive int"),
        (dict(negatives="easy"), "negatives must be"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MixupMiner(**kwargs)


def test_bad_batches():
    with pytest.raises(ValueError, match="integer class labels"):
        MixupMiner()(torch.randn(4, 2), torch.zeros(4))
    embeddings, labels = torch.randn(4, 2), torch.arange(4)
    out_of_range = MixupMiner(num_classes=2, seed=0)(embeddings, labels)  # the loss owns the labels' range
    with pytest.raises(ValueError, match="labels must lie in \\[0, num_classes - 1\\] = \\[0, 1\\]"):
        pml_metrix.MetrixProxyAnchorLoss(2, 2)(embeddings, labels, out_of_range)
    with pytest.raises(ValueError, match="ref_emb"):
        MixupMiner()(torch.randn(4, 2), torch.arange(4), torch.randn(3, 2))


class Blobs(torch.utils.data.Dataset):
    """A tiny in-memory dataset: 8 well-separated classes in 16-d."""

    def __init__(self, n_per_class=12, seed=0):
        g = torch.Generator().manual_seed(seed)
        centres = 3 * torch.randn(8, 16, generator=g)
        self.labels = torch.arange(8).repeat_interleave(n_per_class)
        self.data = centres[self.labels] + torch.randn(len(self.labels), 16, generator=g)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, idx):
        return self.data[idx], self.labels[idx]


def test_embedding_level_metrix_in_pml_metric_loss_only():
    torch.manual_seed(0)
    trunk = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 8))
    loss_fn = pml_metrix.MetrixMSLoss()
    dataset = Blobs()
    losses_seen = []
    trainer = trainers.MetricLossOnly(
        models={"trunk": trunk},
        optimizers={"trunk_optimizer": torch.optim.Adam(trunk.parameters(), lr=1e-2)},
        batch_size=32,
        loss_funcs={"metric_loss": loss_fn},
        mining_funcs={"tuple_miner": MixupMiner(inner_miner=miners.MultiSimilarityMiner(), seed=0)},
        dataset=dataset,
        dataloader_num_workers=0,
        end_of_iteration_hook=lambda t: losses_seen.append(t.losses["metric_loss"].item()),
    )
    logging.getLogger("PML").setLevel(logging.WARNING)
    trainer.train(num_epochs=6)
    first, last = sum(losses_seen[:3]) / 3, sum(losses_seen[-3:]) / 3
    assert last < first


def plan_of(embeddings, labels, **kwargs):
    return MixupMiner(seed=7, **kwargs).plan(embeddings, labels)


def eight_classes():
    g = torch.Generator().manual_seed(3)
    return torch.randn(32, 6, generator=g), torch.arange(8).repeat_interleave(4)


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("num_classes", [None, 8])
def test_drawing_anchor_shows_each_mix_to_one_anchor_of_its_type(strategy, num_classes):
    embeddings, labels = eight_classes()
    every = plan_of(embeddings, labels, strategies=strategy, num_classes=num_classes)
    drawn = plan_of(embeddings, labels, strategies=strategy, num_classes=num_classes, shown_to="drawing_anchor")
    assert torch.equal(drawn.source_index, every.source_index) and torch.equal(drawn.lam, every.lam)  # same draws
    assert drawn.pair_mask.sum(0).eq(1).all()  # one anchor each
    anchor = drawn.pair_mask.float().argmax(0)
    if num_classes is None:
        # the anchor it was drawn for: per_anchor mode draws num_mixes mixes per eligible anchor in order
        eligible = torch.tensor([a for a in range(32) if every.pair_mask[a].any() or strategy == "anchor_negative"])
        assert torch.equal(anchor, eligible[: len(anchor)])
        masks = class_pair_type_masks(labels, labels, drawn.source_index, torch.arange(32))
    else:
        masks = class_pair_type_masks(torch.arange(8), labels, drawn.source_index)
    assert masks[strategy][anchor, torch.arange(len(anchor))].all()  # of its type for that anchor
    assert (drawn.pair_mask <= every.pair_mask).all()


def test_lam_per_batch_is_one_draw_for_all_mixes():
    embeddings, labels = eight_classes()
    plan = plan_of(embeddings, labels, lam_per="batch", strategies=["positive_negative", "anchor_negative"])
    assert len(plan) == 64 and plan.lam.eq(plan.lam[0]).all() and 0 < plan.lam[0] < 1
    assert not plan_of(embeddings, labels).lam.eq(plan.lam[0]).all()


def test_strategy_per_step_draws_one_strategy_each_step_and_names_it():
    embeddings, labels = eight_classes()
    miner = MixupMiner(strategies=["positive_negative", "anchor_negative"], strategy_per_step=True, seed=1)
    seen = []
    for _ in range(20):
        plan = miner.plan(embeddings, labels)
        masks = class_pair_type_masks(labels, labels, plan.source_index, torch.arange(32))
        assert torch.equal(plan.pair_mask, masks[plan.strategy]) and len(plan) == 32
        assert plan.mixed_batch(plan.mix(embeddings)).strategy == plan.strategy
        seen.append(plan.strategy)
    assert set(seen) == {"positive_negative", "anchor_negative"}
    assert MixupMiner(strategies=["positive_negative", "anchor_negative"]).plan(embeddings, labels).strategy is None


def test_the_state_dict_resumes_the_draws():
    embeddings, labels = eight_classes()
    miner = MixupMiner(seed=4)
    miner.plan(embeddings, labels)
    state = miner.state_dict()
    expected = miner.plan(embeddings, labels)
    resumed = MixupMiner(seed=4)
    resumed.load_state_dict(state)
    again = resumed.plan(embeddings, labels)
    assert torch.equal(again.source_index, expected.source_index) and torch.equal(again.lam, expected.lam)
    with pytest.raises(ValueError, match="build the MixupMiner with a seed"):
        MixupMiner().load_state_dict(state)
    elsewhere = dict(state, _extra_state={"cuda:99": state["_extra_state"]["cpu"]})  # a device no machine here has
    with pytest.raises(ValueError, match="generator of device cuda:99, which this machine cannot make"):
        MixupMiner(seed=4).load_state_dict(elsewhere)


def test_integer_batches_are_refused_not_rounded():
    plan = MixupMiner(seed=0).plan(*eight_classes())
    with pytest.raises(ValueError, match="mixing needs a floating-point batch, got torch.uint8"):
        plan.mix(torch.zeros(32, 1, 4, 4, dtype=torch.uint8))


def test_drawing_lam_leaves_the_global_generators_alone(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "manual_seed_all", lambda seed: calls.append(seed))
    monkeypatch.setattr(torch.cuda, "manual_seed", lambda seed: calls.append(seed))
    state = torch.get_rng_state()
    MixupMiner(seed=3).plan(*eight_classes())
    assert calls == [] and torch.equal(torch.get_rng_state(), state)


@st.composite
def label_set_miner_cases(draw):
    embeddings, _, kwargs = draw(miner_cases())
    g = torch.Generator().manual_seed(kwargs["seed"])
    kwargs["label_similarity"] = draw(st.sampled_from(["jaccard", "dice", "cosine", "shares_any"]))
    allow_empty = kwargs["label_similarity"] == "shares_any" and draw(st.booleans())  # the one that takes them
    num_labels = draw(st.integers(2 if allow_empty else 1, 6))
    sets = torch.rand(len(embeddings), num_labels, generator=g) < draw(st.sampled_from([0.2, 0.5]))
    if not allow_empty:
        sets[:, 0] |= ~sets.any(1)
    kwargs["positive_threshold"] = draw(st.sampled_from([0.3, 0.5, 1.0]))
    kwargs["negative_threshold"] = draw(st.sampled_from([0.0, 0.25]))
    return embeddings, sets, kwargs


@settings(max_examples=80, deadline=None)
@given(case=label_set_miner_cases())
def test_label_set_plans_keep_their_promises(case):
    """Every (anchor, mix) pair of the mask is of a promised type, by brute force on the sets:
    a positive shares s >= positive_threshold with the anchor, a negative no label (threshold 0) or
    s <= negative_threshold and is never the anchor itself; an item with no label (shares_any) is
    not its own positive, so it is no anchor-negative mix's anchor side."""
    embeddings, sets, kwargs = case
    plan = MixupMiner(**kwargs).plan(embeddings, sets)
    similarity = pml_metrix.label_sets.get_label_similarity(kwargs["label_similarity"])(sets, sets).double()
    positive = (similarity >= kwargs["positive_threshold"]).tolist()
    shares_none = ~(sets.long() @ sets.long().T).bool()
    threshold = kwargs["negative_threshold"]
    negative = (shares_none if threshold == 0 else similarity <= threshold).fill_diagonal_(False).tolist()
    assert (plan.source_index[:, 0] != plan.source_index[:, 1]).all()
    for a in range(len(sets)):
        for k, (i, j) in enumerate(plan.source_index.tolist()):
            types = {
                "positive_negative": positive[a][i] and i != a and negative[a][j],
                "anchor_negative": i == a and positive[a][a] and negative[a][j],
                "negative_negative": negative[a][i] and negative[a][j],
                "positive_positive": positive[a][i] and positive[a][j] and a not in (i, j),
            }
            assert bool(plan.pair_mask[a, k]) == any(types[s] for s in kwargs["strategies"])


@settings(max_examples=60, deadline=None)
@given(case=miner_cases(), name=st.sampled_from(["jaccard", "dice", "cosine", "shares_any"]),
       threshold=st.sampled_from([0.1, 0.5, 1.0]), negative_threshold=st.sampled_from([0.0, 0.05]))
def test_one_label_per_item_gives_the_class_labels_plan(case, name, threshold, negative_threshold):
    embeddings, labels, kwargs = case
    by_class = MixupMiner(**kwargs).plan(embeddings, labels)
    one_hot = torch.nn.functional.one_hot(labels)
    by_set = MixupMiner(**kwargs, label_similarity=name, positive_threshold=threshold,
                        negative_threshold=negative_threshold).plan(embeddings, one_hot)
    for field in ("source_index", "lam", "pair_mask"):
        assert torch.equal(getattr(by_class, field), getattr(by_set, field)), field


def test_label_sets_with_an_inner_miner_or_another_number_of_proxies_are_refused():
    embeddings = torch.randn(6, 4)
    sets = torch.tensor([[1, 0], [1, 1], [0, 1], [1, 0], [0, 1], [1, 1]])
    with pytest.raises(ValueError, match="inner_miner is a PML miner, which takes class labels"):
        MixupMiner(inner_miner=miners.MultiSimilarityMiner())(embeddings, sets)
    with pytest.raises(ValueError, match="num_classes=3 gives one anchor per label"):
        MixupMiner(num_classes=3)(embeddings, sets)
    # a proxy per label: each proxy's row of the pair mask shows mixes only to the proxies it concerns
    drawn = MixupMiner(num_classes=2, strategies="anchor_negative", shown_to="drawing_anchor", seed=0)(embeddings, sets)
    assert drawn.pair_mask.shape == (2, len(drawn.lam))
    for k, (i, _) in enumerate(drawn.source_index.tolist()):  # drawn for anchor i: shown to the proxies of its labels
        assert drawn.pair_mask[:, k].tolist() == sets[i].bool().tolist()
    with pytest.raises(ValueError, match=r"positive_threshold must be a number in \(0, 1\]"):
        MixupMiner(positive_threshold=0)
    for negative_threshold in (-0.1, 0.5, 0.7, True):
        with pytest.raises(ValueError, match=r"negative_threshold must be a number in \[0, positive_threshold = 0.5\)"):
            MixupMiner(positive_threshold=0.5, negative_threshold=negative_threshold)
    with pytest.raises(ValueError, match="label_similarity must be one of"):
        MixupMiner(label_similarity="overlap")


def test_a_negative_threshold_finds_negatives_where_every_pair_shares_a_label():
    """Sets that all share label 0: no item is a negative at threshold 0 (no mix drawn); Jaccard
    1/3 between the two groups makes them negatives of each other at threshold 0.4."""
    embeddings = torch.randn(8, 4, generator=torch.Generator().manual_seed(0))
    sets = torch.tensor([[1, 1, 0, 0]] * 4 + [[1, 0, 1, 0]] * 4)
    assert len(MixupMiner(seed=0).plan(embeddings, sets).lam) == 0
    plan = MixupMiner(seed=0, negative_threshold=0.4).plan(embeddings, sets)
    assert len(plan.lam) == 8
    first, second = plan.source_index.unbind(1)
    assert torch.equal(first < 4, second >= 4)  # each mix joins the two groups
