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


def made_comparison(tmp_path, recalls, raw_pixels=0.5, untrained=0.3, **final):
    """A Comparison of hand-made results, no training: ``recalls`` variant -> test Recall@1 per seed
    (the first variant the baseline); every other metric from ``final``."""
    from pathlib import Path

    from pml_metrix.app.comparison import Comparison, Study
    from pml_metrix.app.config import RunConfig
    from pml_metrix.app.run_folder import RunResult

    seeds = list(range(len(next(iter(recalls.values())))))
    variants = {name: {"mix_level": "none" if i == 0 else "feature"} for i, name in enumerate(recalls)}
    study = Study(RunConfig(output=str(tmp_path), recall_at_k=[1]), variants, seeds)
    metrics = {"mean_average_precision_at_r": 0.2, "utilization": 0.1, "alignment": 0.5, "uniformity": -2.0,
               "chance_recall_at_1": 0.1, **final}

    def result(name, seed, recall):
        config = study.config(name, seed)
        history = [{"recall_at_1": recall, **metrics, "epoch": 1}]
        return RunResult(config, history, 1, {"recall_at_1": recall, **metrics}, Path(config.output))

    runs = {name: [result(name, seed, r) for seed, r in zip(seeds, rs)] for name, rs in recalls.items()}
    references = [{"recall_at_1": raw_pixels, **metrics}], [{"recall_at_1": untrained, **metrics, "uniformity": -0.01}]
    return Comparison(study, runs, references[0] * len(seeds), references[1] * len(seeds))


@pytest.mark.parametrize(
    "metrix, verdict",
    [
        ([0.62, 0.61, 0.63, 0.64, 0.65, 0.66], "ahead"),  # 6 seeds, all ahead: p = 2 / 64
        ([0.58, 0.59, 0.57, 0.56, 0.55, 0.54], "behind"),
        ([0.62, 0.58, 0.63, 0.64, 0.65, 0.66], "inconclusive"),  # one seed behind: p = 4 / 64 > 0.05
        ([0.62, 0.61, 0.63, 0.64, 0.65], "inconclusive"),  # 5 seeds cannot go below 0.0625
    ],
)
def test_the_verdict_is_ahead_or_behind_only_at_p_at_most_0_05(tmp_path, metrix, verdict):
    comparison = made_comparison(tmp_path, {"baseline": [0.6] * len(metrix), "metrix": metrix})
    verdicts = comparison.verdicts()
    assert list(verdicts) == ["metrix"] and verdicts["metrix"]["verdict"] == verdict
    n = len(metrix)
    assert verdicts["metrix"]["smallest_attainable_p"] == 2 / 2 ** n and verdicts["metrix"]["seeds"] == n
    assert verdicts["metrix"]["p_value"] == sign_flip_p_value([m - 0.6 for m in metrix])
    assert verdicts["metrix"]["seeds_ahead"] == sum(m > 0.6 for m in metrix)
    assert comparison.to_dict()["verdicts"] == verdicts
