"""Choosing a cascade on tuning items so that the choice still holds on new ones.

Thresholds are cross-fitted: for each fold of the tuning items, a structure's thresholds are chosen
on the other folds and applied to that fold, so a structure is judged by what its threshold rule
does on items it was not tuned on; a threshold that merely got lucky on the whole set does not
carry its luck into the figures. The final thresholds are then chosen on all tuning items.

Two objectives. `tolerance`: the cheapest structure whose EM difference from the strongest model
(paired, per item) has a one-sided lower confidence bound ≥ −tolerance, and which saves at least
`min_saving` of the strongest model's cost (else the strongest model alone). The bound is Tango's
score bound; by default it holds for every candidate the search visited at once (`simultaneous`,
`cascade.optimize.simultaneous`), so the promise holds for the one chosen; `each` takes every
candidate's bound on its own (more savings, but the cheapest that clears it is the one its tuning
items flatter most). `value`: the largest net benefit (value_per_correct · EM − cost per item).
Either way, candidates that tie within noise (cost within `tie_cost` of the cheapest feasible;
benefit within one paired standard error of the best, Breiman's one-standard-error rule) go to the
simplest: fewer tiers and models, no learned scorer, then the safer (higher lower bound) one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Literal

import numpy as np
from scipy.stats import norm

from cascade.optimize.candidates import Prepared, Structure
from cascade.optimize.simultaneous import critical_value, lower_bound

SelectionMethod = Literal["simultaneous", "each"]


@dataclass(frozen=True)
class Objective:
    kind: Literal["tolerance", "value"] = "tolerance"
    tolerance: float = 0.01
    value_per_correct: float = 0.0
    confidence: float = 0.95
    min_saving: float = 0.10
    tie_cost: float = 0.02
    selection: SelectionMethod = "simultaneous"

    @property
    def z(self) -> float:
        return float(norm.ppf(self.confidence))


@dataclass(frozen=True, eq=False)
class Summary:
    """A structure's cross-fitted figures on the tuning items against the strongest model alone, and
    the thresholds chosen on all of them. `correct`/`cost_items` are the cross-fitted per-item outcomes;
    `wins`/`losses` the items where it is right and the strongest wrong, and the other way round.
    `offers` is False when its rule falls back to the strongest model on the whole tuning set (its
    thresholds are then its safest): it cannot be chosen, but it was a candidate."""

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
    wins: int = 0
    losses: int = 0
    offers: bool = True


@dataclass(frozen=True)
class Selection:
    """How far below its observed difference each candidate's bound lies: Tango's score bound at `critical`
    (the simultaneous max over `family` candidates, or one candidate's own normal quantile)."""

    method: SelectionMethod
    critical: float
    family: int

    def bound(self, s: Summary) -> float:
        """The lower bound of `s`'s difference from the strongest model (without gold: agreement - 1); the
        strongest model alone is that model, not an estimate of it."""
        if not s.structure.gates and s.wins == s.losses == 0:
            return 0.0
        return _score_bound(s.wins, s.losses, int(s.correct.size), self.critical)

    def describe(self) -> str:
        if self.method == "each":
            return f"each candidate's own bound (z = {self.critical:.2f}), not accounting for the choice"
        return f"simultaneous over {self.family} candidates (critical value {self.critical:.2f})"


@lru_cache(maxsize=4096)
def _score_bound(wins: int, losses: int, n: int, critical: float) -> float:
    return float(lower_bound(np.array(float(wins)), np.array(float(losses)), n, critical))


def selection_for(family: Sequence[Summary], ref: Reference, objective: Objective) -> Selection:
    """The bound the choice is made on: simultaneous over every candidate cascade in `family` (those that
    fall back included: they were in the running), or each candidate's own."""
    cascades = [s for s in family if s.structure.gates]
    if objective.selection == "each" or objective.kind == "value" or not cascades:
        return Selection("each", objective.z, len(cascades))
    diff = np.stack([s.correct - ref.correct for s in cascades])
    return Selection("simultaneous", critical_value(diff, objective.confidence), len(cascades))


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


def summarise(prepared: Prepared, ref: Reference, objective: Objective) -> Summary:
    """The structure's cross-fitted summary; `offers` False when its rule falls back to the strongest model
    on the whole tuning set (the structure has nothing to offer: its safest thresholds are kept)."""
    if not prepared.structure.gates:  # a model alone: nothing to tune
        alone_correct, alone_cost = prepared.outcome(())
        return summary(prepared.structure, (), alone_correct, alone_cost, ref, objective)
    grid = list(prepared.grid())
    outcomes = [prepared.outcome(t) for t in grid]
    correct = np.stack([o[0] for o in outcomes] + [ref.correct])
    cost = np.stack([o[1] for o in outcomes] + [ref.cost])
    final = _pick(correct, cost, ref, np.ones(ref.folds.size, dtype=bool), objective)
    offers = final != len(grid)
    if not offers:
        final = int(np.argmax(lower_bounds(correct[:-1] - ref.correct, objective.z)[1]))
    fitted_correct, fitted_cost = np.zeros(ref.folds.size), np.zeros(ref.folds.size)
    for k in np.unique(ref.folds):
        held = ref.folds == k
        row = _pick(correct, cost, ref, ~held, objective)
        fitted_correct[held], fitted_cost[held] = correct[row, held], cost[row, held]
    found = summary(prepared.structure, grid[final], fitted_correct, fitted_cost, ref, objective)
    return found if offers else replace(found, offers=False)


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
    won, lost = correct - ref.correct > 0, correct - ref.correct < 0
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
        int(won.sum()),
        int(lost.sum()),
    )


def feasible(s: Summary, objective: Objective, selection: Selection) -> bool:
    if not s.structure.gates:
        return True  # a model alone: the fallback
    if not s.offers or s.ratio > 1 - objective.min_saving + 1e-12:
        return False
    return selection.bound(s) >= -objective.tolerance - 1e-12


def choose(summaries: Sequence[Summary], objective: Objective, selection: Selection) -> Summary:
    if objective.kind == "value":
        return choose_value([s for s in summaries if s.offers], objective)
    return choose_tolerance(summaries, objective, selection)


def choose_tolerance(summaries: Sequence[Summary], objective: Objective, selection: Selection) -> Summary:
    """The cheapest feasible candidate (its bound as `selection` takes it); among those within `tie_cost`
    of it, the simplest and safest."""
    ok = [s for s in summaries if feasible(s, objective, selection)]
    cheapest = min(s.ratio for s in ok)
    near = [s for s in ok if s.ratio <= cheapest + objective.tie_cost]
    return min(near, key=lambda s: (s.structure.complexity, -selection.bound(s), s.ratio))


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
