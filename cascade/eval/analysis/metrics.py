"""The field's cost–quality metrics as pure functions of (cost, EM) points.

A curve is a sequence of `(cost, em)` operating points of one policy (e.g. one per threshold).
`weak` and `strong` are the (cost, em) of the cheap and the strong model used alone. Every
function returns None rather than a made-up number when the quantity is undefined.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.spatial import ConvexHull, QhullError

from cascade.eval.analysis.stats import bootstrap_ci as bootstrap_ci  # re-exported: where callers found it

Point = tuple[float, float]
_EPS = 1e-12


def pgr(em: float, weak: Point, strong: Point) -> float | None:
    """Performance gap recovered (RouteLLM, Ong et al. 2024): (EM − EM_weak) / (EM_strong − EM_weak)."""
    gap = strong[1] - weak[1]
    return None if abs(gap) < _EPS else (em - weak[1]) / gap


def normalised_cost(cost: float, weak: Point, strong: Point) -> float | None:
    """(cost − cost_weak) / (cost_strong − cost_weak): 0 = weak alone, 1 = strong alone.

    This is not RouteLLM's axis. RouteLLM's x-axis is the share of queries sent to the strong
    model, which measures cost only for a router that calls exactly one model per query. A cascade
    always pays its first tier, pays every tier it climbs through and any verifier, and can recover
    much of the gap with no strong call at all, so its share of strong calls and its share of the
    cost gap differ. The RouteLLM-definition numbers, on the
    share axis, are in `cascade.eval.analysis.anchors`.
    """
    span = strong[0] - weak[0]
    return None if abs(span) < _EPS else (cost - weak[0]) / span


def _pgr_points(curve: Sequence[Point], weak: Point, strong: Point) -> list[Point] | None:
    points = [(normalised_cost(c, weak, strong), pgr(e, weak, strong)) for c, e in curve]
    if any(x is None or y is None for x, y in points):
        return None
    return [(float(x), float(y)) for x, y in points if x is not None and y is not None]


def apgr(curve: Sequence[Point], weak: Point, strong: Point) -> float | None:
    """Average PGR over normalised cost from 0 to 1: RouteLLM's idea (Ong et al. 2024) on the cost axis.

    Not RouteLLM's exact definition (share of strong calls, raw points, see `cascade.eval.analysis.anchors`):
    here the weak (0, 0) and strong (1, 1) end points are added; points beyond the strong model's cost
    are dropped and cheaper-than-weak points moved to 0; the upper envelope (best PGR reached at
    or below each cost) is integrated by the trapezoid rule. Random weak/strong mixing scores 0.5.
    """
    points = _pgr_points(curve, weak, strong)
    if points is None:
        return None
    kept = sorted([(max(x, 0.0), y) for x, y in points if x <= 1.0 + _EPS] + [(0.0, 0.0), (1.0, 1.0)])
    xs = np.array([min(x, 1.0) for x, _ in kept])
    ys = np.maximum.accumulate(np.array([y for _, y in kept]))
    return float(np.sum((xs[1:] - xs[:-1]) * (ys[1:] + ys[:-1]) / 2))


def cpt(curve: Sequence[Point], weak: Point, strong: Point, target: float = 0.5) -> float | None:
    """Cost to reach `target` PGR (after RouteLLM's CPT(50%), CPT(80%)): the least normalised cost
    among the policy's own points with PGR ≥ target; None when no point gets there. No interpolation
    (RouteLLM interpolates the share of strong calls: `cascade.eval.analysis.anchors`): a point between two
    thresholds would be a different (mixed) policy."""
    points = _pgr_points(curve, weak, strong)
    if points is None:
        return None
    reached = [x for x, y in points if y >= target - _EPS]
    return min(reached) if reached else None


def upper_hull(curve: Sequence[Point]) -> list[Point]:
    """The non-decreasing convex hull (RouterBench): the upper concave envelope from the cheapest
    point up to the cheapest best-EM point, its vertices sorted by cost. Mixing two operating points
    reaches any point on the segment between them. Of points at one cost only the best counts."""
    if not curve:
        return []
    best = max(e for _, e in curve)
    last = min(c for c, e in curve if e == best)
    points: list[Point] = []
    for p in sorted({p for p in curve if p[0] <= last}, key=lambda p: (p[0], -p[1])):
        if not points or p[0] - points[-1][0] >= _EPS:
            points.append(p)
    return [points[i] for i in _upper_vertices(np.array(points))]


def _upper_vertices(points: np.ndarray) -> list[int]:
    """Indices (ascending cost) of the upper hull of points sorted by cost, first and last included.

    scipy's Qhull on coordinates scaled to [0, 1] (scaling keeps the vertices, and spares Qhull
    costs of 1e-4 beside EMs of 1); it rejects fewer than 3 points or a flat set, whose upper hull
    is the two ends."""
    n = len(points)
    if n < 3:
        return list(range(n))
    span = np.ptp(points, axis=0)
    try:
        hull = ConvexHull((points - points.min(axis=0)) / np.where(span > 0, span, 1.0))
    except QhullError:
        return [0, n - 1]
    first, end = points[0], points[-1]
    return sorted(int(i) for i in hull.vertices if _cross(first, end, points[i]) >= 0)


def _cross(o: Point | np.ndarray, a: Point | np.ndarray, b: Point | np.ndarray) -> float:
    return float((a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]))


def aiq(curve: Sequence[Point], cost_range: tuple[float, float] | None = None) -> float | None:
    """Average Improvement in Quality after RouterBench (Hu et al. 2024): the area under the
    non-decreasing convex hull of the points over [c_min, c_max], divided by c_max − c_min.

    RouterBench's `calc_AIQ` integrates over [0, max cost] instead (`cascade.eval.analysis.anchors`).
    `cost_range` defaults to the points' own range; pass a common one to compare policies. Below
    the policy's cheapest point quality counts as 0 (nothing runs that cheaply); beyond its last
    hull point it stays at the best EM.
    """
    hull = upper_hull(curve)
    if not hull:
        return None
    lo, hi = cost_range or (min(c for c, _ in curve), max(c for c, _ in curve))
    if hi - lo < _EPS:
        return hull[-1][1] if hull[0][0] <= hi + _EPS else 0.0
    xs, ys = np.array([c for c, _ in hull]), np.array([e for _, e in hull])
    grid = np.unique(np.clip(np.concatenate([xs, [lo, hi]]), lo, hi))
    a, b = grid[:-1], grid[1:]
    areas = (b - a) * (np.interp(a, xs, ys) + np.interp(b, xs, ys)) / 2  # np.interp is flat past the ends
    return float(np.sum(np.where(a >= xs[0] - _EPS, areas, 0.0)) / (hi - lo))


@dataclass(frozen=True)
class AtPoint:
    """A metric's value and the curve point (index) it was read at."""

    value: float
    index: int


def delta_ibc(curve: Sequence[Point], weak: Point, strong: Point) -> AtPoint | None:
    """ΔIBC (AutoMix, Aggarwal et al. 2023) at the point with the best incremental benefit per cost.

    IBC_m = (EM_m − EM_weak)/(C_m − C_weak), IBC_base = (EM_strong − EM_weak)/(C_strong − C_weak),
    ΔIBC = (IBC_m − IBC_base)/IBC_base × 100. Only points costing more than the weak model count;
    None when no such point exists or the strong model is not better per unit cost than the weak.
    """
    span = strong[0] - weak[0]
    if span <= _EPS or strong[1] - weak[1] <= _EPS:
        return None
    base = (strong[1] - weak[1]) / span
    scored = [((e - weak[1]) / (c - weak[0]), i) for i, (c, e) in enumerate(curve) if c - weak[0] > _EPS]
    if not scored:
        return None
    ibc, index = max(scored, key=lambda s: (s[0], -curve[s[1]][0]))
    return AtPoint((ibc - base) / base * 100, index)


def matched_point(curve: Sequence[Point], target_em: float) -> int | None:
    """The cheapest point with EM ≥ target_em (None if the curve never gets there)."""
    hits = [i for i, (_, e) in enumerate(curve) if e >= target_em - _EPS]
    return min(hits, key=lambda i: (curve[i][0], -curve[i][1])) if hits else None


def cost_reduction_at_matched_em(curve: Sequence[Point], strong: Point, tolerance: float = 0.0) -> AtPoint | None:
    """1 − cost/cost_strong at the cheapest point with EM ≥ EM_strong − tolerance.

    Negative when even that point costs more than the strong model alone; None if EM is never matched.
    """
    index = matched_point(curve, strong[1] - tolerance)
    if index is None or strong[0] <= _EPS:
        return None
    return AtPoint(1 - curve[index][0] / strong[0], index)


def oracle_saving_captured(cost: float, strong_cost: float, oracle_cost: float) -> float | None:
    """Share of the oracle's saving a policy captures: (C_strong − C)/(C_strong − C_oracle)."""
    gap = strong_cost - oracle_cost
    return None if gap <= _EPS else (strong_cost - cost) / gap


def pareto_frontier(curve: Sequence[Point]) -> list[int]:
    """Indices of the points no other point beats (cheaper-or-equal and better-or-equal, one strictly),
    sorted by cost."""
    order = sorted(range(len(curve)), key=lambda i: (curve[i][0], -curve[i][1]))
    frontier: list[int] = []
    best = -np.inf
    for i in order:
        if curve[i][1] > best + _EPS:
            frontier.append(i)
            best = curve[i][1]
    return frontier


@dataclass(frozen=True)
class SamplesSaved:
    """Adaptive sampling vs fixed-k self-consistency at equal EM."""

    k: int
    fixed_em: float
    samples_saved: float
    fraction_saved: float


def samples_saved(
    fixed: Mapping[int, float],
    adaptive_samples: float,
    adaptive_em: float,
    tolerance: float = 0.0,
    k: int | None = None,
) -> SamplesSaved | None:
    """Samples per query an adaptive method saves against fixed-k self-consistency at equal EM.

    Compared with `k` when given, else with the smallest k whose EM ≥ adaptive EM − tolerance
    (Adaptive-Consistency, Aggarwal et al. 2023; ESC, Li et al. 2024). `fixed` maps k → EM of
    majority voting over k samples. None if no fixed k reaches the adaptive EM.
    """
    if k is None:
        reached = sorted(n for n, em in fixed.items() if em >= adaptive_em - tolerance - _EPS)
        if not reached:
            return None
        k = reached[0]
    saved = k - adaptive_samples
    return SamplesSaved(k, fixed[k], saved, saved / k)
