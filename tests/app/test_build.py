"""What a run's config builds (pml_metrix.app.build)."""

import pytest
import torch

from pml_metrix.app.build import build_loss, build_miner
from pml_metrix.app.config import LOSSES, RunConfig
from tests.app.test_study import NOT_DEFAULT


@pytest.mark.parametrize("loss, label_sets", [(loss, False) for loss in LOSSES] + [
    (loss, True) for loss in LOSSES if loss != "pa"])  # proxy anchor refuses label sets: one proxy per class
def test_a_run_without_mixing_ignores_every_option_that_acts_only_under_metrix(loss, label_sets):
    """The loss and the clean-pair miner of a run without mixing are those of its defaults: what lets
    compare pair a Metrix variant with the variant that differs from it in these alone."""
    plain = RunConfig(loss=loss)
    odd = plain.replace(**{name: value for name, value in NOT_DEFAULT.items() if name != "mix_level"})
    generator = torch.Generator().manual_seed(0)
    embeddings = torch.randn(16, 128, generator=generator)
    labels = (torch.rand(16, 5, generator=generator) < 0.4).float() if label_sets else torch.arange(16) % 4
    if label_sets:
        labels[:, 0] = 1  # no empty set
    values = []
    for config in (plain, odd):
        torch.manual_seed(1)  # proxy anchor's proxies
        loss_fn, miner = build_loss(config, 4, label_sets), build_miner(config, 4, label_sets)
        tuple_ = None if miner is None else miner(embeddings, labels)
        values.append((type(loss_fn), type(miner), loss_fn(embeddings, labels, tuple_)))
    assert values[0][:2] == values[1][:2] and torch.equal(values[0][2], values[1][2])
