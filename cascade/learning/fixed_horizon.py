"""Classical tests for a fixed-horizon A/B test, from statsmodels (read once, at the horizon).

`two_proportion_z` is the pooled z-test of two proportions; `proportions` adds Wald's interval of
the difference; `means` is Welch's unequal-variance t-test and interval for a difference in means
(net benefit per run). Each returns (difference, (low, high), two-sided p-value).
"""

from __future__ import annotations

import math

import numpy as np
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

Result = tuple[float, tuple[float, float], float]


def two_proportion_z(k1: int, n1: int, k2: int, n2: int) -> tuple[float, float]:
    """Pooled two-proportion z statistic of k1/n1 − k2/n2 and its two-sided p-value (no evidence: 0, 1)."""
    if n1 == 0 or n2 == 0 or k1 + k2 in (0, n1 + n2):
        return 0.0, 1.0
    z, p = proportions_ztest([k1, k2], [n1, n2])
    return float(z), float(p)


def proportions(k1: int, n1: int, k2: int, n2: int, alpha: float) -> Result:
    """k1/n1 − k2/n2 with the pooled z-test's p-value and Wald's (1 − alpha) interval."""
    _z, p = two_proportion_z(k1, n1, k2, n2)
    low, high = confint_proportions_2indep(k1, n1, k2, n2, method="wald", compare="diff", alpha=alpha)
    return k1 / n1 - k2 / n2, (float(low), float(high)), p


def means(a: np.ndarray, b: np.ndarray, alpha: float) -> Result:
    """mean(a) − mean(b) by Welch's t-test, with its (1 − alpha) interval."""
    diff = float(np.mean(a) - np.mean(b))
    if np.var(a) == 0 and np.var(b) == 0:
        return diff, (diff, diff), 0.0 if diff != 0 else 1.0
    compared = CompareMeans(DescrStatsW(a), DescrStatsW(b))
    _t, p, _df = compared.ttest_ind(usevar="unequal")
    low, high = compared.tconfint_diff(alpha=alpha, usevar="unequal")
    return diff, (float(low), float(high)), float(p) if not math.isnan(p) else 1.0
