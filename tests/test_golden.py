"""With every option at its default, plans and losses are what they were before the refactor of
the loss and the miner (tests/golden.py; values from the code of commit bd34434)."""

import json
from pathlib import Path

import pytest

from tests import golden

SAVED = json.loads((Path(__file__).parent / "data" / "golden_bd34434.json").read_text())


@pytest.fixture(scope="module")
def now():
    return golden.values()


def test_the_same_cases(now):
    assert sorted(now) == sorted(SAVED)


@pytest.mark.parametrize("key", sorted(SAVED))
def test_plans_bit_for_bit_and_losses_to_rounding(now, key):
    if key.endswith("/plans"):
        assert now[key] == SAVED[key]
    else:
        assert now[key]["loss"] == SAVED[key]["loss"]  # the value bit for bit
        assert now[key]["grad"] == pytest.approx(SAVED[key]["grad"], rel=1e-12, abs=1e-15)
