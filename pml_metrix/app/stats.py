"""The statistics of a comparison: mean and spread over seeds, and the exact paired sign-flip test."""

import itertools
import math
import statistics
from typing import Sequence, Tuple


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
    flips = list(itertools.product((1, -1), repeat=len(differences)))
    extreme = sum(abs(statistics.fmean(s * d for s, d in zip(signs, differences))) >= observed - 1e-12 for signs in flips)
    return extreme / len(flips)
