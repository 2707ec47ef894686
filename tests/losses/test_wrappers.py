"""PML's CrossBatchMemory and SelfSupervisedLoss around the Metrix losses: the twin's wrapper bit for
bit on the clean path (memory state included), clean + mix_weight * mixed with a MixedBatch."""

import copy

import pytest
import torch
from pytorch_metric_learning import losses, miners

import pml_metrix
from pml_metrix.losses import CrossBatchMemory, SelfSupervisedLoss
from tests.losses.test_exactness import assert_same

TWINS = {
    "contrastive": (pml_metrix.MetrixContrastiveLoss, losses.ContrastiveLoss),
    "ms": (pml_metrix.MetrixMSLoss, losses.MultiSimilarityLoss),
    "supcon": (pml_metrix.MetrixSupConLoss, losses.SupConLoss),
    "ntxent": (pml_metrix.MetrixNTXentLoss, losses.NTXentLoss),
}
DIM = 6


def steps(num_steps=5, batch_size=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    for _ in range(num_steps):
        yield torch.randn(batch_size, DIM, generator=g, dtype=torch.float64), torch.randint(0, 4, (batch_size,), generator=g)


def step(wrapper, embeddings, *args, **kwargs):
    """The wrapper's loss and its gradient on the embeddings."""
    embeddings = embeddings.clone().requires_grad_()
    loss = wrapper(embeddings, *args, **kwargs)
    return loss.detach(), [torch.autograd.grad(loss, embeddings)[0]]


def memory_state(memory):
    return memory.embedding_memory, memory.label_memory, memory.queue_idx, memory.has_been_filled


def assert_same_memory(ours, theirs):
    for mine, expected in zip(memory_state(ours), memory_state(theirs)):
        assert torch.equal(mine, expected) if torch.is_tensor(mine) else mine == expected


@pytest.mark.parametrize("name", TWINS)
@pytest.mark.parametrize("mined", [False, True], ids=["all_pairs", "miner"])
def test_cross_batch_memory_around_a_metrix_loss_is_pml_s_around_its_twin(name, mined):
    ours_cls, theirs_cls = TWINS[name]
    miner = miners.MultiSimilarityMiner(0.1) if mined else None
    ours = CrossBatchMemory(ours_cls(), DIM, memory_size=32, miner=copy.deepcopy(miner))
    theirs = losses.CrossBatchMemory(theirs_cls(), DIM, memory_size=32, miner=copy.deepcopy(miner))
    for embeddings, labels in steps():  # 5 x 12 > 32: the queue wraps
        assert_same(step(ours, embeddings, labels), step(theirs, embeddings, labels), torch.float64, bitwise=True)
        assert_same_memory(ours, theirs)
    mask = torch.arange(12) % 3 == 0  # PML's enqueue_mask: a third of the batch goes to the memory only
    assert_same(step(ours, embeddings, labels, enqueue_mask=mask), step(theirs, embeddings, labels, enqueue_mask=mask),
                torch.float64, bitwise=True)
    assert_same_memory(ours, theirs)


@pytest.mark.parametrize("name", TWINS)
@pytest.mark.parametrize("mined", ["all_pairs", "inner_miner", "inner_triplets", "memory_miner", "both_miners"])
def test_cross_batch_memory_with_a_mixed_batch_adds_the_batch_s_mixed_part(name, mined):
    """clean (against batch plus memory, as without mixes, with the MixedBatch's inner-miner tuple
    or the memory's own miner where given) + mix_weight * (the batch anchors against the batch's
    mixes); the memory stores the batch, as without mixes."""
    loss_fn = TWINS[name][0](mix_weight=0.3)
    memory_miner = miners.MultiSimilarityMiner(0.1) if mined in ("memory_miner", "both_miners") else None
    with_mixes = CrossBatchMemory(loss_fn, DIM, memory_size=32, miner=copy.deepcopy(memory_miner))
    without = CrossBatchMemory(loss_fn, DIM, memory_size=32, miner=copy.deepcopy(memory_miner))
    by_position = CrossBatchMemory(loss_fn, DIM, memory_size=32, miner=copy.deepcopy(memory_miner))
    inner_miner = {
        "inner_miner": miners.MultiSimilarityMiner(0.2), "both_miners": miners.MultiSimilarityMiner(0.2),
        "inner_triplets": miners.TripletMarginMiner(margin=1.0, type_of_triplets="all"),
    }.get(mined)
    miner = pml_metrix.MixupMiner(inner_miner=inner_miner, seed=0)
    for embeddings, labels in steps(seed=1):
        mixed_batch = miner(embeddings, labels)
        assert (mixed_batch.indices_tuple is not None) == (inner_miner is not None)
        batch_tuple = mixed_batch.indices_tuple
        if batch_tuple is not None:  # PML reads a tuple's references as memory positions: the batch's, this step
            place = (without.queue_idx + torch.arange(len(embeddings))) % 32
            references = (1, 3) if len(batch_tuple) == 4 else (1, 2)  # (a1, p, a2, n) or (a, p, n)
            batch_tuple = tuple(place[index] if position in references else index for position, index in enumerate(batch_tuple))
        # the same tuple given as memory positions (tuple_references="ref_emb") is read as PML reads one
        on_memory = mixed_batch if batch_tuple is None else pml_metrix.MixedBatch(
            mixed_batch.embeddings, mixed_batch.source_index, mixed_batch.lam, mixed_batch.pair_mask, batch_tuple,
            tuple_references="ref_emb",
        )
        total = with_mixes(embeddings, labels, mixed_batch)
        mixed = loss_fn(embeddings, None, loss_fn.mixed_soft_pairs(mixed_batch, labels))
        assert torch.equal(total, without(embeddings, labels, batch_tuple) + 0.3 * mixed)
        assert torch.equal(by_position(embeddings, labels, on_memory), total)
        assert mixed.item() > 0
        assert_same_memory(with_mixes, without)
    with pytest.raises(ValueError, match="mutually exclusive"):
        with_mixes(embeddings, labels, mixed_batch, enqueue_mask=torch.arange(12) < 4)


def test_the_wrappers_accept_the_metrix_twins_of_pml_s_list_and_refuse_the_others():
    for ours, theirs in ((CrossBatchMemory, losses.CrossBatchMemory), (SelfSupervisedLoss, losses.SelfSupervisedLoss)):
        added = set(ours.supported_losses()) - set(theirs.supported_losses())
        assert added == {"MetrixContrastiveLoss", "MetrixMSLoss", "MetrixSupConLoss", "MetrixNTXentLoss"}
    with pytest.raises(Exception, match="CrossBatchMemory not supported for MetrixProxyAnchorLoss"):
        CrossBatchMemory(pml_metrix.MetrixProxyAnchorLoss(4, DIM), DIM)
    with pytest.raises(Exception, match="CrossBatchMemory not supported for MetrixMSLoss"):
        losses.CrossBatchMemory(pml_metrix.MetrixMSLoss(), DIM)  # PML's own wrapper, untouched


@pytest.mark.parametrize("name", TWINS)
@pytest.mark.parametrize("symmetric", [True, False])
def test_self_supervised_loss_around_a_metrix_loss_is_pml_s_around_its_twin(name, symmetric):
    ours_cls, theirs_cls = TWINS[name]
    ours, theirs = SelfSupervisedLoss(ours_cls(), symmetric=symmetric), losses.SelfSupervisedLoss(theirs_cls(), symmetric=symmetric)
    (embeddings, _), (ref_emb, _) = steps(num_steps=2)
    assert_same(step(ours, embeddings, ref_emb), step(theirs, embeddings, ref_emb), torch.float64, bitwise=True)


@pytest.mark.parametrize("name", TWINS)
def test_self_supervised_loss_with_a_mixed_batch_adds_the_joined_views_mixed_part(name):
    """clean (the wrapper's loss without mixes) + mix_weight * (the joined views' anchors against
    their mixes), and the same as the loss called by hand on the joined views, value and gradients."""
    loss_fn = TWINS[name][0](mix_weight=0.3)
    views = SelfSupervisedLoss(loss_fn)
    (embeddings, _), (ref_emb, _) = steps(num_steps=2)
    both, labels = SelfSupervisedLoss.joined_views(embeddings, ref_emb)
    assert torch.equal(both, torch.cat([embeddings, ref_emb])) and torch.equal(labels, torch.arange(12).repeat(2))
    mixed_batch = pml_metrix.MixupMiner(seed=0)(both, labels)
    mixed = loss_fn(both, None, loss_fn.mixed_soft_pairs(mixed_batch, labels))
    assert mixed.item() > 0
    assert torch.equal(views(embeddings, ref_emb, mixed_batch), views(embeddings, ref_emb) + 0.3 * mixed)

    def mixed_part(embeddings, ref_emb):  # the anchors of both views against the mixes (constants here)
        return loss_fn(torch.cat([embeddings, ref_emb]), None, loss_fn.mixed_soft_pairs(mixed_batch, labels))

    (_, [total]), (_, [clean]), (_, [mixed_grad]) = (
        step(views, embeddings, ref_emb, mixed_batch), step(views, embeddings, ref_emb), step(mixed_part, embeddings, ref_emb)
    )
    assert mixed_grad.abs().max() > 0
    assert torch.allclose(total, clean + 0.3 * mixed_grad, rtol=1e-12, atol=1e-15)


def test_self_supervised_loss_refuses_a_pml_tuple_mixes_of_one_view_mixes_with_a_tuple_and_mixes_without_symmetry():
    (embeddings, _), (ref_emb, _) = steps(num_steps=2)
    both, labels = SelfSupervisedLoss.joined_views(embeddings, ref_emb)
    mixed_batch = pml_metrix.MixupMiner(seed=0)(both, labels)
    one_view = pml_metrix.MixupMiner(seed=0)(embeddings, torch.arange(12) % 4)
    with pytest.raises(ValueError, match="pair_mask has 12 rows.*the joined views have 24: draw it on"):
        SelfSupervisedLoss(pml_metrix.MetrixSupConLoss())(embeddings, ref_emb, one_view)
    with pytest.raises(TypeError, match="MixedBatch is no PML indices tuple: pass it to a Metrix loss"):
        SelfSupervisedLoss(losses.SupConLoss())(embeddings, ref_emb, mixed_batch)
    with pytest.raises(ValueError, match="takes no indices tuple, got tuple"):
        SelfSupervisedLoss(pml_metrix.MetrixSupConLoss())(embeddings, ref_emb, miners.BatchEasyHardMiner()(both, labels))
    with pytest.raises(ValueError, match=r"symmetric=False\) takes no MixedBatch"):
        SelfSupervisedLoss(pml_metrix.MetrixSupConLoss(), symmetric=False)(embeddings, ref_emb, mixed_batch)
    with_tuple = pml_metrix.MixupMiner(inner_miner=miners.MultiSimilarityMiner(), seed=0)(both, labels)
    assert with_tuple.indices_tuple is not None
    with pytest.raises(ValueError, match="takes no mined tuple.*build the MixupMiner without inner_miner"):
        SelfSupervisedLoss(pml_metrix.MetrixNTXentLoss())(embeddings, ref_emb, with_tuple)
