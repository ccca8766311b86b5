"""Statistics on scipy, checked against what the hand-written code they replaced computed."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from scipy import stats as sps

from cascade.eval.analysis import metrics as m
from cascade.eval.analysis import stats


def _hand_bootstrap(values: np.ndarray, n_resamples: int, level: float, seed: int) -> tuple[float, float]:
    """The percentile bootstrap `metrics.bootstrap_ci` computed by hand before scipy."""
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(n_resamples, values.size))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(means, [tail, 100 - tail])
    return float(lo), float(hi)


def _hand_upper_hull(curve: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The monotone-chain hull `metrics.upper_hull` computed by hand before scipy.spatial."""
    points = sorted(set(curve), key=lambda p: (p[0], -p[1]))
    best = max(range(len(points)), key=lambda i: (points[i][1], -points[i][0]))
    hull: list[tuple[float, float]] = []
    for p in points[: best + 1]:
        if hull and p[0] - hull[-1][0] < 1e-12:
            continue
        while len(hull) >= 2 and m._cross(hull[-2], hull[-1], p) >= -1e-12:
            hull.pop()
        hull.append(p)
    return hull


@pytest.mark.parametrize("n", [1, 2, 7, 100, 1319])
def test_percentile_bootstrap_equals_the_hand_written_one(n: int) -> None:
    rng = np.random.default_rng(n)
    for seed in range(3):
        values = (rng.random(n) < rng.random()).astype(float)
        ours = stats.bootstrap_ci(values, 1000, seed=seed)
        assert ours == pytest.approx(_hand_bootstrap(values, 1000, 0.95, seed), abs=1e-12)
    assert m.bootstrap_ci is stats.bootstrap_ci  # still found where callers import it


def test_bca_agrees_with_wilson_on_a_proportion() -> None:
    values = np.array([1.0] * 280 + [0.0] * 120)  # 0.70 of 400
    wilson = sps.binomtest(280, 400).proportion_ci(0.95, method="wilson")
    lo, hi = stats.bootstrap_ci(values, 4000, method="BCa") or (0.0, 0.0)
    assert lo == pytest.approx(wilson.low, abs=0.006) and hi == pytest.approx(wilson.high, abs=0.006)


def test_constant_data_gives_a_point_interval_for_both_methods() -> None:
    assert stats.bootstrap_ci(np.ones(10)) == (1.0, 1.0)
    assert stats.bootstrap_ci(np.ones(10), method="BCa") == (1.0, 1.0)  # scipy alone gives NaN
    assert stats.bootstrap_ci([]) is None


def test_paired_difference_is_narrower_than_unpaired_on_correlated_items() -> None:
    rng = np.random.default_rng(0)
    easy = rng.random(300) < 0.7  # the same items are easy for both
    a = (easy | (rng.random(300) < 0.2)).astype(float)
    b = (easy & (rng.random(300) < 0.95)).astype(float)
    paired = stats.mean_difference(a, b)
    assert paired is not None and paired.ci is not None
    assert paired.value == pytest.approx(a.mean() - b.mean())
    lo, hi = paired.ci
    unpaired = 1.96 * np.sqrt(a.var() / a.size + b.var() / b.size) * 2
    assert lo < paired.value < hi and hi - lo < 0.6 * unpaired


def test_ratio_of_sums_paired_bca() -> None:
    rng = np.random.default_rng(1)
    strong = rng.uniform(1.0, 3.0, 500)
    cascade = strong * np.where(rng.random(500) < 0.6, 0.2, 1.1)  # 60% of items answered cheaply
    ratio = stats.ratio_of_sums(cascade, strong, method="BCa")
    assert ratio is not None and ratio.ci is not None
    assert ratio.value == pytest.approx(cascade.sum() / strong.sum())
    assert ratio.ci[0] < ratio.value < ratio.ci[1] and ratio.ci[1] - ratio.ci[0] < 0.15
    assert ratio.as_dict()["value"] == ratio.value
    assert stats.ratio_of_sums([1.0], [0.0]) is None
    with pytest.raises(ValueError, match="one value per item"):
        stats.ratio_of_sums([1.0, 2.0], [1.0])


def test_convex_hull_equals_the_hand_written_one() -> None:
    rng = np.random.default_rng(0)
    for trial in range(400):
        n = int(rng.integers(1, 30))
        if trial % 3 == 0:  # a grid: ties in cost, collinear runs
            costs, ems = rng.integers(0, 6, n) / 5, rng.integers(0, 6, n) / 5
        elif trial % 3 == 1:  # USD-sized costs beside EMs near 1
            costs = np.sort(rng.random(n)) * 1e-3
            ems = 1 - np.exp(-costs * 3000) + rng.normal(0, 0.01, n)
        else:
            costs, ems = rng.random(n), rng.random(n)
        curve = [(float(c), float(e)) for c, e in zip(costs, ems, strict=True)]
        assert m.upper_hull(curve) == _hand_upper_hull(curve)
    line = [(x, 0.3 + 0.5 * x) for x in (0.1, 0.4, 0.7, 0.9)]  # Qhull refuses a flat set
    assert m.upper_hull(line) == [line[0], line[-1]]


@pytest.mark.parametrize("n", [1, 2, 40, 1019])
def test_vs_strongest_equals_the_direct_scipy_call_it_replaced(n: int) -> None:
    """`replay --config`'s paired intervals come from `stats` now; before, config_report called scipy itself."""
    from cascade.eval.analysis.config_report import vs_strongest

    rng = np.random.default_rng(n)
    correct, strong_correct = (rng.random(n) < 0.7).astype(float), (rng.random(n) < 0.8).astype(float)
    cost, strong_cost = rng.random(n), 3 * rng.random(n)

    def direct(stat: Callable[..., np.ndarray], data: tuple[np.ndarray, np.ndarray]) -> list[float] | None:
        if n < 2:
            return None
        result = sps.bootstrap(data, stat, paired=True, vectorized=True, n_resamples=500, method="percentile",
                               rng=np.random.default_rng(11))  # fmt: skip
        return [float(result.confidence_interval.low), float(result.confidence_interval.high)]

    got = vs_strongest(correct, cost, strong_correct, strong_cost, seed=11, n_resamples=500)
    ratio = got["cost_ratio_vs_strongest"]
    assert ratio["value"] == cost.sum() / strong_cost.sum() and ratio["n"] == n
    assert ratio["ci"] == direct(lambda a, b, axis=-1: a.sum(axis=axis) / b.sum(axis=axis), (cost, strong_cost))
    delta = got["em_delta_vs_strongest"]
    assert delta["value"] == pytest.approx(correct.mean() - strong_correct.mean(), abs=1e-15)
    assert delta["ci"] == direct(lambda a, b, axis=-1: a.mean(axis=axis) - b.mean(axis=axis), (correct, strong_correct))
