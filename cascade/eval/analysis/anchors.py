"""The anchors' own metric definitions, so our numbers can be set beside their published ones.

`cascade.eval.analysis.metrics` holds our forms, made for cascades (cost on the x-axis, end points added,
no interpolation). The field publishes its numbers with other definitions; these reproduce them:

- RouteLLM (Ong et al. 2024; lm-sys/RouteLLM @ 0b64fdaf, `routellm/evals/evaluate.py`): x is the
  share of queries that call the strong model, y the accuracy, the router's raw points sorted by x.
  APGR = (AUC − AUC_weak) / (AUC_strong − AUC_weak), each the trapezoid area over the points' own
  x-range; CPT(p) = `np.interp(EM_weak + p·(EM_strong − EM_weak), accuracies, shares)`.
- RouterBench (Hu et al. 2024; withmartian/routerbench @ cc67d100, `evaluation/AIQ.py`, `calc_AIQ`):
  the non-decreasing convex hull of (cost, quality), extended flat to the largest hull cost of all
  the curves compared, its trapezoid area divided by that cost — i.e. averaged over [0, max cost],
  quality counting 0 below a curve's cheapest point.

Tests pin both to values computed with the anchors' code on fixed curves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from cascade.eval.analysis.metrics import Point, upper_hull

ROUTELLM_SOURCE = "RouteLLM @ 0b64fdaf, routellm/evals/evaluate.py"
ROUTERBENCH_SOURCE = "RouterBench @ cc67d100, evaluation/AIQ.py (calc_AIQ)"
CPT_TARGETS = {"cpt50": 0.5, "cpt80": 0.8}


@dataclass(frozen=True)
class RouteLLMMetrics:
    """APGR and CPT as RouteLLM computes them; CPTs are shares of queries calling the strong model
    (RouteLLM prints them ×100 as percentages). `notes` say why a value is None or how to read it."""

    apgr: float | None
    cpt50: float | None
    cpt80: float | None
    notes: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, float | dict[str, str] | None]:
        return {"apgr": self.apgr, "cpt50": self.cpt50, "cpt80": self.cpt80, "notes": dict(self.notes)}


def routellm_metrics(points: Sequence[Point], weak_em: float, strong_em: float) -> RouteLLMMetrics:
    """RouteLLM's APGR and CPT(50%), CPT(80%) of (strong-call share, EM) points.

    RouteLLM's sort leaves the order of points at one share undefined (and its result depends on
    it); a policy swept over several thresholds can give several, so the most accurate one is kept.
    Where the curve never calls the strong model the axis is undefined and every value is None.
    """
    share, acc = _by_share(points)
    if share.size == 0 or share[-1] <= 0:
        why = "undefined: no point of this curve calls the strong model, so the share axis does not move"
        return RouteLLMMetrics(None, None, None, dict.fromkeys(("apgr", *CPT_TARGETS), why))
    notes: dict[str, str] = {}
    values: dict[str, float | None] = {}
    values["apgr"] = _apgr(share, acc, weak_em, strong_em)
    if values["apgr"] is None:
        notes["apgr"] = "undefined: " + ("one share only" if share[0] == share[-1] else "strong EM = weak EM")
    for key, target in CPT_TARGETS.items():
        values[key], note = _cpt(share, acc, weak_em + target * (strong_em - weak_em))
        if note:
            notes[key] = note
    if np.any(np.diff(acc) < 0):
        notes["curve"] = "EM is not monotone in the share; np.interp (RouteLLM's CPT) then returns one of the crossings"
    return RouteLLMMetrics(values["apgr"], values["cpt50"], values["cpt80"], notes)


def _by_share(points: Sequence[Point]) -> tuple[np.ndarray, np.ndarray]:
    best: dict[float, float] = {}
    for share, em in points:
        best[share] = max(em, best.get(share, -np.inf))
    order = sorted(best)
    return np.array(order, dtype=float), np.array([best[s] for s in order], dtype=float)


def _apgr(share: np.ndarray, acc: np.ndarray, weak_em: float, strong_em: float) -> float | None:
    auc = np.trapezoid(acc, share)
    weak_auc = np.trapezoid(np.full(share.size, weak_em), share)
    strong_auc = np.trapezoid(np.full(share.size, strong_em), share)
    if strong_auc == weak_auc:
        return None
    return float((auc - weak_auc) / (strong_auc - weak_auc))


def _cpt(share: np.ndarray, acc: np.ndarray, target_em: float) -> tuple[float | None, str]:
    value = float(np.interp(target_em, acc, share))
    if not np.any(acc >= target_em):
        return None, f"not reached: no point has EM ≥ {target_em:.4f} (RouteLLM's np.interp would clamp to {value:.4f})"
    if value == 0.0:
        return value, "reached with no strong call: the share axis does not count the cascade's other tiers"
    return value, ""


def routerbench_cost_end(curves: Sequence[Sequence[Point]]) -> float:
    """The cost `calc_AIQ` averages up to: the largest cost at which a curve reaches its best quality."""
    ends = [max(c for c, e in curve if e == max(q for _, q in curve)) for curve in curves if curve]
    return max(ends, default=0.0)


def routerbench_aiq(curves: Sequence[Sequence[Point]]) -> list[float | None]:
    """RouterBench's AIQ of each (cost, quality) curve, compared together as `calc_AIQ` compares them.

    Each curve's non-decreasing convex hull ends at its last point of best quality; all are extended
    flat to the largest such cost among the curves (`routerbench_cost_end`), and each hull's
    trapezoid area (from its own cheapest point) is divided by that cost. `calc_AIQ` itself fails on
    curves with fewer than 3 distinct costs; the same formula is applied to them here. None for an
    empty curve or when every cost is 0.
    """
    end = routerbench_cost_end(curves)
    scores: list[float | None] = []
    for curve in curves:
        hull = upper_hull(curve)
        if not hull or end <= 0:
            scores.append(None)
            continue
        xs, ys = np.array([c for c, _ in hull]), np.array([e for _, e in hull])
        area = np.trapezoid(ys, xs) + (end - xs[-1]) * ys[-1]
        scores.append(float(area / end))
    return scores
