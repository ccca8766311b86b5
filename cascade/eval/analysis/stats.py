"""Bootstrap confidence intervals over items, on `scipy.stats.bootstrap`.

Items are resampled with replacement (seeded). `percentile` is the default: with the same seed it
draws exactly the resamples the project's earlier hand-written bootstrap drew, so reported intervals
did not move when it was replaced. `BCa` (bias-corrected and accelerated) covers better when the
statistic is skewed, e.g. a ratio of costs. Two measurements on the same items (a cascade and the
strong model alone) are resampled together (`paired`): the interval of their difference or ratio
then reflects the items' variation once, as it should, not two independent draws.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats

Method = Literal["percentile", "BCa"]
Values = Sequence[float] | np.ndarray
_MAX_BATCH_CELLS = 4_000_000  # resamples × items held in memory at once (BCa's jackknife too)


@dataclass(frozen=True)
class Estimate:
    """A statistic on the items and its bootstrap interval (None when it cannot be formed)."""

    value: float
    ci: tuple[float, float] | None

    def as_dict(self) -> dict[str, float | list[float] | None]:
        return {"value": self.value, "ci": list(self.ci) if self.ci else None}


def bootstrap_ci(
    values: Values, n_resamples: int = 1000, level: float = 0.95, seed: int = 0, method: Method = "percentile"
) -> tuple[float, float] | None:
    """Interval of the mean of `values`; None for no values."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return None
    return _interval((data,), _mean, n_resamples, level, seed, method, paired=False)


def mean_difference(
    a: Values, b: Values, n_resamples: int = 1000, level: float = 0.95, seed: int = 0, method: Method = "percentile"
) -> Estimate | None:
    """mean(a) − mean(b) over the same items (e.g. EM of a cascade minus EM of the strong model), paired."""
    x, y = _pair(a, b)
    if x.size == 0:
        return None
    ci = _interval((x, y), _difference, n_resamples, level, seed, method, paired=True)
    return Estimate(float(_difference(x, y)), ci)


def ratio_of_sums(
    a: Values, b: Values, n_resamples: int = 1000, level: float = 0.95, seed: int = 0, method: Method = "percentile"
) -> Estimate | None:
    """sum(a) / sum(b) over the same items (e.g. tokens or cost of a cascade over the strong model's), paired.

    None when sum(b) is 0. Resamples whose denominator sums to 0 count as infinite."""
    x, y = _pair(a, b)
    if x.size == 0 or y.sum() == 0:
        return None
    ci = _interval((x, y), _ratio, n_resamples, level, seed, method, paired=True)
    return Estimate(float(_ratio(x, y)), ci)


def _pair(a: Values, b: Values) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"paired measurements need one value per item on both sides, got {x.size} and {y.size}")
    return x, y


def _mean(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.asarray(np.mean(x, axis=axis))


def _difference(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.asarray(np.mean(x, axis=axis) - np.mean(y, axis=axis))


def _ratio(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(np.sum(x, axis=axis) / np.sum(y, axis=axis))


def _interval(
    data: tuple[np.ndarray, ...],
    statistic: Callable[..., np.ndarray],
    n_resamples: int,
    level: float,
    seed: int,
    method: Method,
    *,
    paired: bool,
) -> tuple[float, float] | None:
    """scipy's interval. Where BCa is undefined (NaN: e.g. no resample moves the statistic) the
    percentile interval of the same resamples is returned instead."""
    if data[0].size < 2:  # scipy refuses; every resample of one item is that item
        value = float(statistic(*data))
        return value, value
    batch = max(1, _MAX_BATCH_CELLS // data[0].size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # degenerate-data and divide warnings: handled below
        result = stats.bootstrap(
            data,
            statistic,
            n_resamples=n_resamples,
            batch=batch,
            vectorized=True,
            paired=paired,
            confidence_level=level,
            method=method,
            rng=np.random.default_rng(seed),
        )
    low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    if np.isnan(low) or np.isnan(high):
        tail = (1 - level) / 2 * 100
        low, high = (float(v) for v in np.percentile(result.bootstrap_distribution, [tail, 100 - tail]))
    return low, high
