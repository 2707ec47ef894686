"""Mixing plans: the mix formula, pair-type masks."""

import torch

from pml_metrix.mixing import MixingPlan, pair_type_masks


def test_mix_equals_the_formula_for_any_batch_first_tensor():
    plan = MixingPlan(torch.tensor([[0, 2], [1, 0]]), torch.tensor([0.25, 0.9]), torch.ones(3, 2, dtype=torch.bool))
    for batch in (torch.randn(3, 5), torch.randn(3, 2, 4, 4)):
        mixed = plan.mix(batch)
        assert torch.allclose(mixed[0], 0.25 * batch[0] + 0.75 * batch[2])
        assert torch.allclose(mixed[1], 0.9 * batch[1] + 0.1 * batch[0])


def class_pair_type_masks(anchor_labels, labels, source_index, anchor_index=None):
    """pair_type_masks for class labels: positives of the anchor's class, negatives of another."""
    same = anchor_labels[:, None] == labels[None, :]
    return pair_type_masks(same, ~same, source_index, anchor_index)


def test_pair_type_masks():
    labels = torch.tensor([0, 0, 1, 1])
    source_index = torch.tensor([[0, 2], [1, 2], [2, 3], [0, 1]])
    masks = class_pair_type_masks(labels, labels, source_index, torch.arange(4))
    # anchor 0: mix (0,2) is anchor-negative, (1,2) positive-negative, (2,3) negative-negative
    assert masks["anchor_negative"][0].tolist() == [True, False, False, False]
    assert masks["positive_negative"][0].tolist() == [False, True, False, False]
    assert masks["negative_negative"][0].tolist() == [False, False, True, False]
    assert masks["positive_positive"][2].tolist() == [False, False, False, False]
    assert masks["negative_negative"][2].tolist() == [False, False, False, True]
    proxies = class_pair_type_masks(torch.arange(2), labels, source_index)
    assert proxies["positive_negative"][0].tolist() == [True, True, False, False]  # no identity for proxies
    assert torch.equal(proxies["anchor_negative"], proxies["positive_negative"])  # the same to a proxy
