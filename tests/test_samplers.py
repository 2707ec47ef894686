"""DistributedMPerClassSampler: the processes' shares of each batch make the batch one process draws."""

from collections import Counter

import numpy as np
import pytest
import torch
from pytorch_metric_learning.samplers import MPerClassSampler

from pml_metrix.samplers import DistributedMPerClassSampler

M, BATCH_SIZE, EPOCHS = 3, 18, 2
LABELS = torch.tensor([c for c in range(9) for _ in range(2 + c % 4)])  # 9 classes of 2 to 5 items
LENGTH = 2 * BATCH_SIZE + 5  # items per epoch: rounded down to two batches


def make_sampler(rank=0, world_size=1):
    return DistributedMPerClassSampler(LABELS, M, BATCH_SIZE, LENGTH, rank, world_size)


def epochs(sampler, seed=0):
    """The sampler's lists for EPOCHS epochs after seeding numpy (PML's samplers draw from it)."""
    np.random.seed(seed)
    return [list(sampler) for _ in range(EPOCHS)]


def test_one_process_draws_what_pml_draws():
    assert epochs(make_sampler()) == epochs(MPerClassSampler(LABELS, M, BATCH_SIZE, LENGTH))


@pytest.mark.parametrize("world_size", [2, 3, 6])
def test_the_shares_of_each_batch_are_the_batch_with_whole_classes(world_size):
    whole = epochs(make_sampler())
    shares = [epochs(make_sampler(rank, world_size)) for rank in range(world_size)]
    share_size = BATCH_SIZE // world_size
    for epoch, drawn in enumerate(whole):
        assert len(drawn) == 2 * BATCH_SIZE
        assert all(len(s[epoch]) == len(make_sampler(rank, world_size)) == 2 * share_size for rank, s in enumerate(shares))
        for start in range(0, len(drawn), BATCH_SIZE):
            pieces = [s[epoch][start // world_size : start // world_size + share_size] for s in shares]
            assert sum(pieces, []) == drawn[start : start + BATCH_SIZE]
            classes = [Counter(LABELS[piece].tolist()) for piece in pieces]
            assert all(set(counts.values()) == {M} for counts in classes)  # M items of each class
            assert sum(len(counts) for counts in classes) == BATCH_SIZE // M  # no class in two shares


def test_a_dataloader_gives_a_process_its_share_of_each_batch():
    whole = epochs(make_sampler())[0]
    items = torch.arange(len(LABELS))
    loader = torch.utils.data.DataLoader(items, batch_size=BATCH_SIZE // 2, sampler=make_sampler(1, 2), drop_last=True)
    np.random.seed(0)
    assert [batch.tolist() for batch in loader] == [whole[9:18], whole[27:36]]


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(rank=2, world_size=2), r"rank must lie in \[0, world_size\)"),
        (dict(rank=0, world_size=4), "make it a multiple of 12"),
    ],
)
def test_bad_shares_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_sampler(**kwargs)


def test_the_state_dict_resumes_the_class_order():
    labels = torch.arange(10).repeat_interleave(4)
    sampler = DistributedMPerClassSampler(labels, 4, 8, len(labels))
    np.random.seed(0)
    list(sampler)
    state = sampler.state_dict()
    other = DistributedMPerClassSampler(labels, 4, 8, len(labels))
    other.load_state_dict(state)
    np.random.seed(1)
    expected = list(sampler)
    np.random.seed(1)
    assert list(other) == expected
    with pytest.raises(ValueError, match="another run"):
        DistributedMPerClassSampler(torch.arange(5).repeat_interleave(4), 4, 8, 20).load_state_dict(state)
