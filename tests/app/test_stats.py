import math

import pytest

from pml_metrix.app.stats import mean_std, sign_flip_p_value


@pytest.mark.parametrize(
    "differences, p",
    [
        ([0.01, 0.02, 0.03, 0.04, 0.05], 2 / 32),  # every seed agreeing: the floor for 5 seeds
        ([-0.01, -0.02, -0.03], 2 / 8),
        ([0.01, -0.01], 1.0),
        ([0.0, 0.0, 0.0], 1.0),
        ([0.060, -0.001, 0.004, 0.000, -0.024], 24 / 32),  # the final rows' Recall@1 signs and sizes
    ],
)
def test_sign_flip_p_value_counts_the_flips_at_least_as_extreme(differences, p):
    assert sign_flip_p_value(differences) == pytest.approx(p)


def test_sign_flip_p_value_by_enumeration():
    differences = [0.3, -0.1, 0.2, 0.05]
    observed = abs(sum(differences))
    count = 0
    for mask in range(16):
        flipped = [d if mask >> i & 1 else -d for i, d in enumerate(differences)]
        count += abs(sum(flipped)) >= observed - 1e-12
    assert sign_flip_p_value(differences) == count / 16


def test_mean_std():
    assert mean_std([1.0, 3.0]) == (2.0, pytest.approx(math.sqrt(2)))
    mean, std = mean_std([0.5])
    assert mean == 0.5 and math.isnan(std)


def test_nan_scores_give_nan_not_a_crash_or_a_false_p():
    # statistics.stdev raises on NaN; a NaN difference must not read as p = 0
    assert all(math.isnan(x) for x in mean_std([math.nan, 0.4, 0.5]))
    assert math.isnan(sign_flip_p_value([0.1, math.nan, 0.2]))
