"""Choosing a cascade on tuning items so that the choice still holds on new ones.

Thresholds are cross-fitted: for each fold of the tuning items, a structure's thresholds are chosen
on the other folds and applied to that fold, so a structure is judged by what its threshold rule
does on items it was not tuned on; a threshold that merely got lucky on the whole set does not
carry its luck into the figures. The final thresholds are then chosen on all tuning items.

Two objectives. `tolerance`: the cheapest structure whose EM difference from the strongest model
(paired, per item) has a one-sided lower confidence bound ≥ −tolerance, and which saves at least
`min_saving` of the strongest model's cost (else the strongest model alone). `value`: the largest
net benefit (value_per_correct · EM − cost per item). Either way, candidates that tie within noise
(cost within `tie_cost` of the cheapest feasible; benefit within one paired standard error of the
best, Breiman's one-standard-error rule) go to the simplest: fewer tiers and models, no learned
scorer, then the safer (higher lower bound) one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.stats import norm

from cascade.optimize.candidates import Prepared, Structure


@dataclass(frozen=True)
class Objective:
    kind: Literal["tolerance", "value"] = "tolerance"
    tolerance: float = 0.01
    value_per_correct: float = 0.0
    confidence: float = 0.95
    min_saving: float = 0.10
    tie_cost: float = 0.02

    @property
    def z(self) -> float:
        return float(norm.ppf(self.confidence))


@dataclass(frozen=True, eq=False)
class Summary:
    """A structure's cross-fitted figures on the tuning items against the strongest model alone, and
    the thresholds chosen on all of them. `correct`/`cost_items` are the cross-fitted per-item outcomes."""

    structure: Structure
    thresholds: tuple[float, ...]
    em: float
    cost: float
    ratio: float
    diff: float
    lcb: float
    benefit: float
    correct: np.ndarray
    cost_items: np.ndarray


@dataclass(frozen=True)
class Reference:
    """The strongest model alone on the tuning items, and the fold of each item."""

    correct: np.ndarray
    cost: np.ndarray
    folds: np.ndarray


def lower_bounds(diff: np.ndarray, z: float) -> tuple[np.ndarray, np.ndarray]:
    """Per row of per-item differences: the mean and its one-sided lower bound (normal, z standard errors).

    The standard error counts one extra win and one extra loss, so a difference seen on only a
    couple of items never looks certain (a plus-two pseudo-count, like Agresti–Caffo's)."""
    n = diff.shape[-1]
    mean = diff.mean(axis=-1)
    padded = (np.sum((diff - mean[..., None]) ** 2, axis=-1) + 2.0) / (n + 1)
    return mean, mean - z * np.sqrt(padded / n)


def _pick(correct: np.ndarray, cost: np.ndarray, ref: Reference, mask: np.ndarray, objective: Objective) -> int:
    """The row (threshold setting) the objective picks on the items in `mask`; the last row is the fallback."""
    if objective.kind == "value":
        return int(np.argmax((objective.value_per_correct * correct[:, mask] - cost[:, mask]).mean(axis=1)))
    _, lcb = lower_bounds(correct[:, mask] - ref.correct[mask], objective.z)
    ratio = cost[:, mask].sum(axis=1) / ref.cost[mask].sum()
    ok = np.flatnonzero((lcb >= -objective.tolerance - 1e-12) & (ratio <= 1 - objective.min_saving + 1e-12))
    if not ok.size:
        return int(correct.shape[0]) - 1
    # Settings that do the same on these items are told apart by the safer bound, then the higher
    # thresholds (a later row): the lowest threshold that happens to accept nothing more here may
    # accept much more on other items.
    order = np.lexsort((-ok, -np.round(lcb[ok], 12), np.round(ratio[ok], 12)))
    return int(ok[order[0]])


def summarise(prepared: Prepared, ref: Reference, objective: Objective, *, keep: bool = False) -> Summary | None:
    """The structure's cross-fitted summary, or None when its rule falls back to the strongest model
    on the whole tuning set (the structure has nothing to offer; with `keep`, its safest thresholds)."""
    if not prepared.structure.gates:  # a model alone: nothing to tune
        alone_correct, alone_cost = prepared.outcome(())
        return summary(prepared.structure, (), alone_correct, alone_cost, ref, objective)
    grid = list(prepared.grid())
    outcomes = [prepared.outcome(t) for t in grid]
    correct = np.stack([o[0] for o in outcomes] + [ref.correct])
    cost = np.stack([o[1] for o in outcomes] + [ref.cost])
    final = _pick(correct, cost, ref, np.ones(ref.folds.size, dtype=bool), objective)
    if final == len(grid):
        if not keep:
            return None
        final = int(np.argmax(lower_bounds(correct[:-1] - ref.correct, objective.z)[1]))
    fitted_correct, fitted_cost = np.zeros(ref.folds.size), np.zeros(ref.folds.size)
    for k in np.unique(ref.folds):
        held = ref.folds == k
        row = _pick(correct, cost, ref, ~held, objective)
        fitted_correct[held], fitted_cost[held] = correct[row, held], cost[row, held]
    return summary(prepared.structure, grid[final], fitted_correct, fitted_cost, ref, objective)


def summary(
    structure: Structure,
    thresholds: tuple[float, ...],
    correct: np.ndarray,
    cost: np.ndarray,
    ref: Reference,
    objective: Objective,
) -> Summary:
    diff, lcb = lower_bounds(correct - ref.correct, objective.z)
    total = float(cost.sum())
    benefit = float(np.mean(objective.value_per_correct * correct - cost))
    return Summary(
        structure,
        tuple(thresholds),
        float(correct.mean()),
        total,
        total / float(ref.cost.sum()),
        float(diff),
        float(lcb),
        benefit,
        correct,
        cost,
    )


def feasible(s: Summary, objective: Objective, optimism: float = 0.0) -> bool:
    if not s.structure.gates:
        return True  # a model alone: the fallback
    return s.lcb - optimism >= -objective.tolerance - 1e-12 and s.ratio <= 1 - objective.min_saving + 1e-12


def choose(summaries: Sequence[Summary], objective: Objective, optimism: float = 0.0) -> Summary:
    if objective.kind == "value":
        return choose_value(summaries, objective)
    return choose_tolerance(summaries, objective, optimism)


def selection_optimism(
    summaries: Sequence[Summary], ref: Reference, objective: Objective, resamples: int = 200
) -> float:
    """How much the EM difference of the candidate the tolerance rule picks flatters it: Efron's optimism,
    by the bootstrap. Each resample of the tuning items picks its cheapest feasible candidate, which is
    then measured on the items the resample left out; the mean gap between the two is what picking
    the best-looking of many noisy candidates adds to the winner's figures (about nothing with a few
    candidates, a point or more with hundreds on a few hundred items)."""
    candidates = [s for s in summaries if s.structure.gates]
    if not candidates:
        return 0.0
    diff = np.stack([s.correct - ref.correct for s in candidates])
    cost = np.stack([s.cost_items for s in candidates])
    n = diff.shape[1]
    rng = np.random.default_rng(0)
    gaps = []
    for _ in range(resamples):
        weight = rng.multinomial(n, np.full(n, 1.0 / n)).astype(float)
        out = weight == 0
        mean = diff @ weight / n
        padded = ((diff - mean[:, None]) ** 2 @ weight + 2.0) / (n + 1)
        lcb = mean - objective.z * np.sqrt(padded / n)
        ratio = cost @ weight / float(ref.cost @ weight)
        ok = np.flatnonzero((lcb >= -objective.tolerance) & (ratio <= 1 - objective.min_saving))
        if ok.size and out.any():
            pick = ok[np.argmin(ratio[ok])]
            gaps.append(mean[pick] - diff[pick, out].mean())
    return max(0.0, float(np.mean(gaps))) if gaps else 0.0


def choose_tolerance(summaries: Sequence[Summary], objective: Objective, optimism: float = 0.0) -> Summary:
    """The cheapest feasible candidate (its lower bound less the selection `optimism`); among those within
    `tie_cost` of it, the simplest and safest."""
    ok = [s for s in summaries if feasible(s, objective, optimism)]
    cheapest = min(s.ratio for s in ok)
    near = [s for s in ok if s.ratio <= cheapest + objective.tie_cost]
    return min(near, key=lambda s: (s.structure.complexity, -s.lcb, s.ratio))


def choose_value(summaries: Sequence[Summary], objective: Objective) -> Summary:
    """The best net benefit, or the simplest candidate within one paired standard error of it."""

    def benefit(s: Summary) -> np.ndarray:
        return np.asarray(objective.value_per_correct * s.correct - s.cost_items)

    best = max(summaries, key=lambda s: s.benefit)
    near = []
    for s in summaries:
        d = benefit(best) - benefit(s)
        if s.benefit >= best.benefit - float(d.std(ddof=1)) / np.sqrt(d.size):
            near.append(s)
    return min(near, key=lambda s: (s.structure.complexity, -s.benefit))
