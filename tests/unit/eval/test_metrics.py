"""Every cost–quality metric on small curves computed by hand (the arithmetic is in the comments)."""

from __future__ import annotations

import numpy as np
import pytest

from cascade.eval.analysis import metrics as m

# weak alone (cost 1, EM 0.5), strong alone (cost 3, EM 0.9); a policy's four operating points.
WEAK, STRONG = (1.0, 0.5), (3.0, 0.9)
CURVE = [(1.5, 0.7), (2.0, 0.8), (2.5, 0.75), (3.5, 0.9)]
# normalised cost x = (c - 1)/2:  0.25, 0.5, 0.75, 1.25
# PGR = (em - 0.5)/0.4:           0.5,  0.75, 0.625, 1.0


def test_pgr_and_normalised_cost() -> None:
    assert m.pgr(0.7, WEAK, STRONG) == pytest.approx(0.5)
    assert m.normalised_cost(2.0, WEAK, STRONG) == pytest.approx(0.5)
    assert m.pgr(0.7, (1, 0.5), (3, 0.5)) is None  # no gap to recover
    assert m.normalised_cost(2.0, (1, 0.5), (1, 0.9)) is None


def test_apgr_by_hand() -> None:
    # Points (0,0) (0.25,0.5) (0.5,0.75) (0.75,0.625→envelope 0.75) (1,1); x=1.25 is dropped.
    # Trapezoids: 0.25*(0+0.5)/2 + 0.25*(0.5+0.75)/2 + 0.25*(0.75+0.75)/2 + 0.25*(0.75+1)/2
    #           = 0.0625 + 0.15625 + 0.1875 + 0.21875 = 0.625
    assert m.apgr(CURVE, WEAK, STRONG) == pytest.approx(0.625)


def test_apgr_of_random_mixing_is_one_half() -> None:
    line = [(1 + 2 * p, 0.5 + 0.4 * p) for p in np.linspace(0, 1, 11)]
    assert m.apgr(line, WEAK, STRONG) == pytest.approx(0.5)


def test_cpt_uses_the_policy_points_only() -> None:
    assert m.cpt(CURVE, WEAK, STRONG, 0.5) == pytest.approx(0.25)  # first point already recovers half
    assert m.cpt(CURVE, WEAK, STRONG, 0.8) == pytest.approx(1.25)  # only the point beyond strong's cost
    assert m.cpt(CURVE[:3], WEAK, STRONG, 0.8) is None  # never reached: None, not a guess


def test_aiq_concave_curve_by_hand() -> None:
    # Hull (1,.5) (1.5,.7) (2,.8) (3,.9); (2.5,.75) lies under the segment (2,.8)-(3,.9).
    # Area: 0.5*(.5+.7)/2 + 0.5*(.7+.8)/2 + 1*(.8+.9)/2 = 0.3 + 0.375 + 0.85 = 1.525; / (3-1) = 0.7625
    points = [(1.0, 0.5), (1.5, 0.7), (2.0, 0.8), (2.5, 0.75), (3.0, 0.9)]
    assert m.aiq(points) == pytest.approx(0.7625)


def test_aiq_takes_the_convex_hull_not_the_points() -> None:
    # (2,.6) is below the chord (1,.5)-(3,.9), which mixing reaches: area 2*(.5+.9)/2 = 1.4; /2 = 0.7
    assert m.aiq([(1.0, 0.5), (2.0, 0.6), (3.0, 0.9)]) == pytest.approx(0.7)


def test_aiq_is_non_decreasing_and_uses_the_given_range() -> None:
    # Best EM at cost 2, then flat: 1*(.5+.9)/2 + 1*.9 = 1.6; /2 = 0.8
    assert m.aiq([(1.0, 0.5), (2.0, 0.9), (3.0, 0.8)]) == pytest.approx(0.8)
    # Range [0.5, 3.5]: 0 below the cheapest point, 1.4 on [1,3], 0.9*0.5 after: 1.85/3
    assert m.aiq([(1.0, 0.5), (3.0, 0.9)], (0.5, 3.5)) == pytest.approx(1.85 / 3)


def test_upper_hull_and_pareto_frontier() -> None:
    points = [(1.0, 0.5), (1.5, 0.7), (2.0, 0.8), (2.5, 0.75), (3.5, 0.9), (2.0, 0.7)]
    assert m.upper_hull(points) == [(1.0, 0.5), (1.5, 0.7), (2.0, 0.8), (3.5, 0.9)]
    assert m.pareto_frontier(points) == [0, 1, 2, 4]


def test_delta_ibc_at_the_best_point() -> None:
    # IBC_base = 0.4/2 = 0.2. IBC: A 0.2/0.5 = 0.4, B 0.3/1 = 0.3, C 0.25/1.5, D 0.4/2.5 = 0.16.
    # Best is A: (0.4 - 0.2)/0.2 * 100 = 100.
    result = m.delta_ibc(CURVE, WEAK, STRONG)
    assert result is not None
    assert result.value == pytest.approx(100.0) and result.index == 0
    assert m.delta_ibc([(1.0, 0.6)], WEAK, STRONG) is None  # nothing costs more than weak
    assert m.delta_ibc(CURVE, WEAK, (3.0, 0.4)) is None  # strong no better than weak


def test_cost_reduction_at_matched_em_and_oracle_saving() -> None:
    exact = m.cost_reduction_at_matched_em(CURVE, STRONG)
    assert exact is not None and exact.index == 3
    assert exact.value == pytest.approx(1 - 3.5 / 3)  # matched only beyond strong's cost: negative
    loose = m.cost_reduction_at_matched_em(CURVE, STRONG, tolerance=0.1)
    assert loose is not None and loose.index == 1 and loose.value == pytest.approx(1 - 2 / 3)
    assert m.cost_reduction_at_matched_em(CURVE[:3], STRONG) is None
    # Oracle costs 1.2: saving captured at B = (3 - 2)/(3 - 1.2)
    assert m.oracle_saving_captured(2.0, 3.0, 1.2) == pytest.approx(1 / 1.8)
    assert m.oracle_saving_captured(2.0, 3.0, 3.0) is None


def test_bootstrap_ci_is_seeded_and_brackets_the_mean() -> None:
    values = np.array([1.0] * 70 + [0.0] * 30)
    lo, hi = m.bootstrap_ci(values, seed=1) or (0, 0)
    assert lo < 0.7 < hi and 0.05 < hi - lo < 0.3
    assert m.bootstrap_ci(values, seed=1) == m.bootstrap_ci(values, seed=1)
    assert m.bootstrap_ci(np.ones(10)) == (1.0, 1.0)
    assert m.bootstrap_ci([]) is None


def test_samples_saved_against_fixed_k() -> None:
    fixed = {1: 0.60, 3: 0.70, 5: 0.75, 10: 0.76}
    # Adaptive: 3.2 samples for EM 0.75 — fixed needs k=5 for that EM: saves 1.8 samples, 36%.
    saved = m.samples_saved(fixed, adaptive_samples=3.2, adaptive_em=0.75)
    assert saved is not None and saved.k == 5
    assert saved.samples_saved == pytest.approx(1.8) and saved.fraction_saved == pytest.approx(0.36)
    assert m.samples_saved(fixed, 3.2, 0.80) is None
    against_max = m.samples_saved(fixed, 3.2, 0.75, k=10)
    assert against_max is not None and against_max.samples_saved == pytest.approx(6.8)
