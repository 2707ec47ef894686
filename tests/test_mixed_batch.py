"""Bad input to MixedBatch, SoftPairs and the Metrix losses raises a ValueError naming the problem."""

import dataclasses

import pytest
import torch

import pml_metrix

B, D, K = 6, 4, 5


def batch():
    torch.manual_seed(0)
    return torch.randn(B, D), torch.tensor([0, 0, 1, 1, 2, 2])


def mixed(**overrides):
    args = dict(
        embeddings=torch.randn(K, D),
        source_index=torch.randint(0, B, (K, 2)),
        lam=torch.rand(K),
        pair_mask=None,
    )
    args.update(overrides)
    return pml_metrix.MixedBatch(**args)


LOSSES = [
    lambda: pml_metrix.MetrixMSLoss(),
    lambda: pml_metrix.MetrixContrastiveLoss(),
    lambda: pml_metrix.MetrixProxyAnchorLoss(3, D),
    lambda: pml_metrix.MetrixSupConLoss(),
    lambda: pml_metrix.MetrixNTXentLoss(),
]


@pytest.mark.parametrize(
    "overrides,message",
    [
        (dict(embeddings=torch.randn(K)), "shape \\(N, d\\)"),
        (dict(embeddings=torch.randn(K, D).long()), "floating-point"),
        (dict(embeddings=torch.full((K, D), float("nan"))), "NaN or Inf"),
        (dict(embeddings=torch.full((K, D), float("inf"))), "NaN or Inf"),
        (dict(source_index=torch.zeros(K, 3, dtype=torch.long)), "source_index must be a long tensor of shape"),
        (dict(source_index=torch.zeros(K, 2)), "source_index must be a long tensor"),
        (dict(lam=torch.rand(K + 1)), "lam must be a float tensor of shape"),
        (dict(lam=torch.full((K,), 1.5)), "lam must lie in \\[0, 1\\]"),
        (dict(lam=torch.full((K,), -0.1)), "lam must lie in \\[0, 1\\]"),
        (dict(lam=torch.full((K,), float("nan"))), "lam must lie in \\[0, 1\\]"),
        (dict(pair_mask=torch.ones(B, K)), "pair_mask must be a bool tensor"),
        (dict(pair_mask=torch.ones(B, K + 1, dtype=torch.bool)), "pair_mask must have shape"),
        (dict(lam=torch.rand(K, device="meta")), "lam is on meta but the embeddings are on cpu"),
    ],
)
def test_mixed_batch_rejects(overrides, message):
    with pytest.raises(ValueError, match=message):
        mixed(**overrides)


@pytest.mark.parametrize("make_loss", LOSSES, ids=["ms", "contrastive", "proxy_anchor", "supcon", "ntxent"])
def test_losses_reject_bad_batches(make_loss):
    embeddings, labels = batch()
    loss_fn = make_loss()
    cases = [
        ((embeddings, labels[:-1], None), "labels must have shape \\(6,\\), one label per embedding, got shape \\(5,\\)"),
        ((embeddings.clone().fill_(float("nan")), labels, None), "NaN or Inf"),
        ((embeddings, labels.float(), None), "integer class labels.*labels.long\\(\\)"),
        ((embeddings[:0], labels[:0], None), "empty"),
        ((embeddings, labels, mixed(source_index=torch.full((K, 2), B))), "source_index must index the batch of 6"),
        ((embeddings, labels, mixed(embeddings=torch.randn(K, D + 1))), "must match the embeddings"),
        ((embeddings, labels, mixed(embeddings=torch.randn(K, D).double(), lam=torch.rand(K).double())), "must match"),
        ((embeddings, labels, mixed(pair_mask=torch.ones(B + 7, K, dtype=torch.bool))), "pair_mask (must have shape|has one row per batch item)"),
        ((embeddings, None, mixed()), "needs the batch labels"),
    ]
    for args, message in cases:
        with pytest.raises(ValueError, match=message):
            loss_fn(*args)


def test_a_pair_mask_of_the_wrong_anchors_is_refused_even_when_its_shape_fits():
    """B = num_classes: a mask of batch rows fits proxy anchor's shape, one of class rows fits MS's."""
    embeddings, labels = batch()
    batch_rows = mixed(pair_mask=torch.ones(B, K, dtype=torch.bool))
    with pytest.raises(ValueError, match="build the MixupMiner with num_classes=6"):
        pml_metrix.MetrixProxyAnchorLoss(B, D)(embeddings, labels, batch_rows)
    class_rows = mixed(pair_mask=torch.ones(B, K, dtype=torch.bool), num_classes=B)
    for loss_fn in (pml_metrix.MetrixMSLoss(), pml_metrix.MetrixContrastiveLoss()):
        with pytest.raises(ValueError, match="build the MixupMiner without num_classes"):
            loss_fn(embeddings, labels, class_rows)
    with pytest.raises(ValueError, match="num_classes=4"):
        pml_metrix.MetrixProxyAnchorLoss(4, D)(embeddings[:, :], labels % 4, class_rows)
    with pytest.raises(ValueError, match="pair_mask must have shape \\(3, 5\\)"):
        mixed(pair_mask=torch.ones(B, K, dtype=torch.bool), num_classes=3)


def test_proxy_anchor_rejects_labels_out_of_range():
    embeddings, labels = batch()
    with pytest.raises(ValueError, match="labels must lie in \\[0, num_classes - 1\\] = \\[0, 1\\]"):
        pml_metrix.MetrixProxyAnchorLoss(2, D)(embeddings, labels)
    with pytest.raises(ValueError, match="got values in \\[-1, 1\\]"):
        pml_metrix.MetrixProxyAnchorLoss(3, D)(embeddings, labels - 1)


def test_soft_pairs_are_checked_by_the_loss_they_are_given_to():
    embeddings, _ = batch()
    ref = torch.randn(4, D)
    cases = [
        (pml_metrix.SoftPairs(ref, torch.rand(B, 5)), "A x R tensor with R = len\\(embeddings\\) = 4"),
        (pml_metrix.SoftPairs(ref, torch.rand(B, 4) + 1), "soft_labels must lie in \\[0, 1\\]"),
        (pml_metrix.SoftPairs(ref, torch.ones(B, 4, dtype=torch.long)), "float in \\[0, 1\\] or bool"),
        (pml_metrix.SoftPairs(ref, torch.rand(B, 4), torch.ones(B, 3, dtype=torch.bool)), "pair_mask must have shape"),
        (pml_metrix.SoftPairs(ref.double(), torch.rand(B, 4)), "SoftPairs.embeddings \\(torch.float64"),
    ]
    for soft_pairs, message in cases:
        with pytest.raises(ValueError, match=message):
            pml_metrix.MetrixMSLoss()(embeddings, None, soft_pairs)
    with pytest.raises(ValueError, match="soft_labels has 7 rows but the loss has 6 anchors"):
        pml_metrix.MetrixMSLoss()(embeddings, None, pml_metrix.SoftPairs(ref, torch.rand(7, 4)))
    with pytest.raises(ValueError, match="one per proxy"):
        pml_metrix.MetrixProxyAnchorLoss(3, D)(embeddings, None, pml_metrix.SoftPairs(ref, torch.rand(B, 4)))


def test_mix_weight_must_be_non_negative():
    with pytest.raises(ValueError, match="mix_weight must be a finite number >= 0"):
        pml_metrix.MetrixMSLoss(mix_weight=-1)


def test_mixed_embeddings_on_another_device_are_rejected():
    embeddings, labels = batch()
    meta = pml_metrix.MixedBatch(
        torch.randn(K, D, device="meta"),
        torch.zeros(K, 2, dtype=torch.long, device="meta"),
        torch.rand(K, device="meta"),
    )
    with pytest.raises(ValueError, match="MixedBatch.embeddings is on meta but the embeddings are on cpu"):
        pml_metrix.MetrixMSLoss()(embeddings, labels, meta)


def test_soft_labels_of_a_plan():
    labels = torch.tensor([0, 1, 2])
    mb = pml_metrix.MixedBatch(torch.randn(2, D), torch.tensor([[0, 1], [1, 1]]), torch.tensor([0.3, 0.8]))
    soft = mb.soft_pairs(labels)
    expected = torch.tensor([[0.3, 0.0], [0.7, 1.0], [0.0, 0.0]])
    assert torch.allclose(soft.soft_labels, expected)


def test_soft_labels_for_any_label_values():
    labels = torch.tensor([1000, -5, 7, 1000])
    source_index = torch.tensor([[0, 1], [2, 3], [1, 1]])
    lam = torch.tensor([0.25, 0.6, 0.9])
    mb = pml_metrix.MixedBatch(torch.randn(3, D), source_index, lam)
    soft = mb.soft_pairs(labels).soft_labels
    source_labels = labels[source_index]
    same_i, same_j = (labels[:, None] == source_labels[:, column] for column in (0, 1))
    assert torch.equal(soft, lam * same_i + (1 - lam) * same_j)
    assert soft[1, 2] == 1  # a mix of two items of class -5


def test_class_soft_pairs_are_the_soft_pairs_of_one_anchor_per_class():
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 4, (10,), generator=g)
    source_index, lam = torch.randint(0, 10, (6, 2), generator=g), torch.rand(6, generator=g)
    mb = pml_metrix.MixedBatch(torch.randn(6, D), source_index, lam, torch.rand(5, 6) < 0.5, num_classes=5)
    by_class = mb.class_soft_pairs(labels, 5)  # class 4: in no mix
    classes = torch.arange(5)[:, None]
    expected = lam * (labels[source_index[:, 0]] == classes) + (1 - lam) * (labels[source_index[:, 1]] == classes)
    assert torch.allclose(by_class.soft_labels, expected) and by_class.pair_mask is mb.pair_mask
    assert by_class.soft_labels[4].eq(0).all()


def test_a_short_repr_and_pml_s_tuple_handling_names_mixed_batch():
    mb = mixed(pair_mask=torch.tensor([[True, False, True, False, True]] * B))
    text = repr(mb)
    assert text.startswith("MixedBatch(K=5, embeddings=(5, 4), anchors=batch items, pair_mask=0.600 of the pairs kept")
    assert "tensor" not in text and len(text) < 200
    assert "strategy=anchor_negative" in repr(dataclasses.replace(mb.plan, strategy="anchor_negative").mixed_batch(mb.embeddings))
    for use in (len, lambda m: m[0], lambda m: tuple(m)):
        with pytest.raises(TypeError, match="MixedBatch is no PML indices tuple"):
            use(mb)
    from pytorch_metric_learning import losses
    from pytorch_metric_learning.utils import loss_and_miner_utils as lmu

    embeddings, labels = batch()
    with pytest.raises(TypeError, match="pass it to a Metrix loss"):
        losses.MultiSimilarityLoss()(embeddings, labels, mb)  # a PML loss given a MixedBatch
    with pytest.raises(TypeError, match="MixedBatch"):
        lmu.convert_to_pairs(mb, labels)
    assert bool(mb)


def random_label_sets(num_items, num_labels, generator):
    sets = torch.rand(num_items, num_labels, generator=generator) < 0.4
    sets[torch.arange(num_items), torch.randint(num_labels, (num_items,), generator=generator)] = True  # none empty
    return sets


@pytest.mark.parametrize("name", sorted(pml_metrix.label_sets.LABEL_SIMILARITIES))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_soft_labels_of_label_sets_are_the_mixes_of_the_set_similarities(name, dtype):
    g = torch.Generator().manual_seed(3)
    sets = random_label_sets(9, 5, g)
    source_index, lam = torch.randint(0, 9, (7, 2), generator=g), torch.rand(7, generator=g, dtype=torch.float64)
    mb = pml_metrix.MixedBatch(torch.randn(7, D).to(dtype), source_index, lam.to(dtype))
    soft = mb.soft_pairs(sets, name).soft_labels
    assert soft.dtype == pml_metrix.functional.loss_dtype(dtype) and tuple(soft.shape) == (9, 7)
    brute = pml_metrix.label_sets.get_label_similarity(name)
    expected = [
        [mb.lam[k].item() * float(brute(sets[a : a + 1].double(), sets[i : i + 1].double()))
         + (1 - mb.lam[k].item()) * float(brute(sets[a : a + 1].double(), sets[j : j + 1].double()))
         for k, (i, j) in enumerate(source_index.tolist())]
        for a in range(9)
    ]
    assert torch.allclose(soft.double(), torch.tensor(expected, dtype=torch.float64), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", sorted(pml_metrix.label_sets.LABEL_SIMILARITIES))
def test_one_label_per_item_gives_the_class_soft_labels_bit_for_bit(name):
    g = torch.Generator().manual_seed(4)
    labels = torch.randint(0, 4, (12,), generator=g)
    source_index, lam = torch.randint(0, 12, (20, 2), generator=g), torch.rand(20, generator=g)
    mb = pml_metrix.MixedBatch(torch.randn(20, D), source_index, lam, torch.rand(12, 20, generator=g) < 0.5)
    by_set = mb.soft_pairs(torch.nn.functional.one_hot(labels), name)
    by_class = mb.soft_pairs(labels)
    assert torch.equal(by_set.soft_labels, by_class.soft_labels) and by_set.pair_mask is by_class.pair_mask


def test_mix_soft_labels_mixes_the_sources_soft_labels_for_each_anchor():
    g = torch.Generator().manual_seed(6)
    batch_soft_labels = torch.rand(8, 8, generator=g, dtype=torch.float64)  # any soft labels, not symmetric
    source_index, lam = torch.randint(0, 8, (11, 2), generator=g), torch.rand(11, generator=g, dtype=torch.float64)
    mb = pml_metrix.MixedBatch(torch.randn(11, D, dtype=torch.float64), source_index, lam)
    expected = torch.tensor([[lam[k] * batch_soft_labels[a, i] + (1 - lam[k]) * batch_soft_labels[a, j]
                              for k, (i, j) in enumerate(source_index.tolist())] for a in range(8)], dtype=torch.float64)
    assert torch.equal(mb.mix_soft_labels(batch_soft_labels), expected)
    with pytest.raises(ValueError, match=r"source_index must index the batch of 5 items"):
        mb.mix_soft_labels(batch_soft_labels[:5, :5])


def test_given_batch_soft_labels_are_used_as_the_label_sets_similarities():
    g = torch.Generator().manual_seed(7)
    sets = random_label_sets(9, 5, g)
    mb = pml_metrix.MixedBatch(torch.randn(7, D), torch.randint(0, 9, (7, 2), generator=g), torch.rand(7, generator=g))
    similarities = pml_metrix.label_sets.dice(sets.float(), sets.float())
    computed = mb.soft_pairs(sets, "dice").soft_labels
    assert torch.equal(mb.soft_pairs(sets, "dice", similarities).soft_labels, computed)
    with pytest.raises(ValueError, match=r"batch_soft_labels must have shape \(8, 8\), the similarity of each pair"):
        mb.soft_pairs(sets[:8], "dice", similarities)
    with pytest.raises(ValueError, match="batch_soft_labels are the similarities of label sets, but the labels are class"):
        mb.soft_pairs(torch.arange(9), "dice", similarities)
    with pytest.raises(ValueError, match=r"batch_soft_labels must be an A x B tensor.*got shape \(9,\)"):
        mb.mix_soft_labels(similarities[0])
    # A anchors of their own (proxies): each row mixed by the plan, Metrix's rule
    membership = sets.T.double()
    by_rule = torch.stack([lam * membership[:, i] + (1 - lam) * membership[:, j] for (i, j), lam in zip(mb.source_index.tolist(), mb.lam.double())], 1)
    assert torch.allclose(mb.mix_soft_labels(membership).double(), by_rule)
    with pytest.raises(ValueError, match="batch_soft_labels is on meta but the embeddings are on cpu"):
        mb.mix_soft_labels(similarities.to("meta"))


def test_soft_pairs_from_label_sets_label_each_pair_but_the_anchor_s_own():
    g = torch.Generator().manual_seed(5)
    embeddings, sets = torch.randn(6, D, dtype=torch.float64), random_label_sets(6, 3, g)
    soft_pairs = pml_metrix.SoftPairs.from_label_sets(embeddings, sets.long(), "dice")
    assert soft_pairs.embeddings is embeddings
    assert torch.equal(soft_pairs.pair_mask, ~torch.eye(6, dtype=torch.bool))
    assert torch.equal(soft_pairs.soft_labels, pml_metrix.label_sets.dice(sets.double(), sets.double()))
    with pytest.raises(ValueError, match=r"labels must have shape \(6, C\), one label set per embedding, got shape \(5, 3\)"):
        pml_metrix.SoftPairs.from_label_sets(embeddings, sets[:5])
    with pytest.raises(ValueError, match="where jaccard is 0/0"):
        pml_metrix.SoftPairs.from_label_sets(embeddings, torch.zeros(6, 3))


def test_showing_negatives_adds_the_pairs_of_label_0_to_the_mask():
    soft_labels = torch.tensor([[0.0, 0.4, 1.0], [0.0, 0.0, 0.7]])
    pair_mask = torch.tensor([[False, True, False], [False, False, True]])
    refs = torch.randn(3, 2)
    shown = pml_metrix.SoftPairs(refs, soft_labels, pair_mask).showing_negatives()
    assert shown.pair_mask.tolist() == [[True, True, False], [True, True, True]]
    assert torch.equal(shown.soft_labels, soft_labels) and shown.embeddings is refs
    bool_shown = pml_metrix.SoftPairs(refs, soft_labels > 0, pair_mask).showing_negatives()
    assert torch.equal(bool_shown.pair_mask, shown.pair_mask)
    assert pml_metrix.SoftPairs(refs, soft_labels).showing_negatives().pair_mask is None


def test_tuple_references_are_checked_whenever_set():
    mb = pml_metrix.MixedBatch(torch.randn(3, D), torch.zeros(3, 2, dtype=torch.long), torch.rand(3))
    assert mb.tuple_references == "batch"
    mb.tuple_references = "ref_emb"
    with pytest.raises(ValueError, match=r"tuple_references must be one of \('batch', 'ref_emb'\), got 'Batch'"):
        mb.tuple_references = "Batch"
    assert mb.tuple_references == "ref_emb"


def test_the_documented_way_to_change_a_plan_field_keeps_the_inner_miner_s_tuple():
    """docs/api/mixed_batch.md: change the plan and mix again, handing on ``indices_tuple``."""
    from pytorch_metric_learning import miners

    g = torch.Generator().manual_seed(0)
    embeddings, labels = torch.randn(16, 4, generator=g), torch.arange(4).repeat_interleave(4)
    mixed_batch = pml_metrix.MixupMiner(seed=0, inner_miner=miners.MultiSimilarityMiner(0.1))(embeddings, labels)
    assert mixed_batch.indices_tuple is not None
    changed = dataclasses.replace(mixed_batch.plan, strategy="anchor_negative").mixed_batch(
        mixed_batch.embeddings, mixed_batch.indices_tuple
    )
    assert changed.strategy == "anchor_negative" and changed.indices_tuple is mixed_batch.indices_tuple
