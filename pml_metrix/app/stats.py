"""The statistics of a comparison: mean and spread over seeds, the exact paired sign-flip test, and
the verdict it gives."""

import itertools
import math
import statistics
from typing import Any, Dict, Sequence, Tuple

SIGNIFICANCE = 0.05  # a verdict of ahead or behind needs the paired p-value at most this (6 seeds at least)


def mean_std(values: Sequence[float]) -> Tuple[float, float]:
    """Mean and sample standard deviation (the spread NaN for a single value: none can be read;
    both NaN when a value is NaN, e.g. alignment of a split without two items of a class)."""
    if any(math.isnan(v) for v in values):
        return math.nan, math.nan
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else math.nan)


def sign_flip_p_value(differences: Sequence[float]) -> float:
    """Exact two-sided paired randomisation test: the share of the 2^n sign flips whose mean
    difference is at least as far from 0 as the observed one. With n seeds it cannot go below
    2 / 2^n (0.25 for 3 seeds, 0.0625 for 5). NaN when a difference is NaN."""
    if any(math.isnan(d) for d in differences):
        return math.nan
    observed = abs(statistics.fmean(differences))
    flips = itertools.product((1, -1), repeat=len(differences))  # 2^n, one at a time
    extreme = sum(abs(statistics.fmean(s * d for s, d in zip(signs, differences))) >= observed - 1e-12 for signs in flips)
    return extreme / 2 ** len(differences)


def paired(scores: Sequence[float], baseline_scores: Sequence[float]) -> Tuple[float, float]:
    """The mean paired difference of ``scores`` to ``baseline_scores`` (one per seed, in the same
    order) and its two-sided sign-flip p-value."""
    differences = [score - base for score, base in zip(scores, baseline_scores)]
    return statistics.fmean(differences), sign_flip_p_value(differences)


def verdict(scores: Sequence[float], baseline_scores: Sequence[float]) -> Dict[str, Any]:
    """``ahead`` or ``behind`` of the baseline where the paired p-value is at most ``SIGNIFICANCE``,
    else ``inconclusive``; with the mean difference, the observed p, the smallest p that these seeds
    can give (2 / 2^m, m the seeds whose scores differ: a level seed's flip changes nothing; 1 when
    none differ; a seed without a score, NaN, counts nowhere) and the seeds on which ``scores`` were
    ahead, behind and level."""
    difference, p = paired(scores, baseline_scores)
    decided = p <= SIGNIFICANCE  # False for NaN
    pairs = list(zip(scores, baseline_scores))
    differing = sum(score != base for score, base in pairs if not (math.isnan(score) or math.isnan(base)))
    return {
        "verdict": ("ahead" if difference > 0 else "behind") if decided else "inconclusive",
        "mean_difference": difference, "p_value": p, "smallest_attainable_p": min(1.0, 2 / 2 ** differing),
        "significance": SIGNIFICANCE, "seeds": len(scores),
        "seeds_ahead": sum(score > base for score, base in pairs),
        "seeds_behind": sum(score < base for score, base in pairs),
        "seeds_level": sum(score == base for score, base in pairs),
    }
