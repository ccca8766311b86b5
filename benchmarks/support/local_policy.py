"""The default's policy replayed on cached outputs, and learned: which tiers a question type calls.

A policy is global acceptance thresholds on the scorer's P(correct) (one per quick tier; the same
probability on every question type) plus, per detected question type, the set of tiers called.
A query goes through its type's tiers in order; the first whose answer reaches its threshold
answers, else the last one called does. Replayed with out-of-fold probabilities (never a scorer's
own training items), so what the search sees is what unseen items would get.

The search: for every threshold vector of a small grid, each type takes the cheapest tier set
whose EM on every family of that type is within `slack` of that family's best single tier and
whose cost is at most that tier's; the vector with the least total relative cost wins. Types with
too few calibration items, and types never seen, get the fallback set (the same search over all
families at once).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations, product

import numpy as np

from benchmarks.support.local_outputs import QUICK, TIERS

Subset = tuple[str, ...]
GRID = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 1.01)  # 1.01: never accepts (the tier only votes)
MIN_TYPE_ITEMS = 40


@dataclass
class Table:
    """Per item: its family and type, each tier's correctness and cost, and P(correct) of each tier
    for each set of earlier-called quick tiers (`p[(tier, earlier)]`, out of fold)."""

    family: np.ndarray
    task: np.ndarray
    correct: dict[str, np.ndarray]
    cost: dict[str, np.ndarray]
    p: dict[tuple[str, Subset], np.ndarray] = field(default_factory=dict)

    def where(self, mask: np.ndarray) -> Table:
        return Table(
            self.family[mask],
            self.task[mask],
            {k: v[mask] for k, v in self.correct.items()},
            {k: v[mask] for k, v in self.cost.items()},
            {k: v[mask] for k, v in self.p.items()},
        )


def replay(table: Table, tiers: Subset, thresholds: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """Correctness and cost per item of the cascade over `tiers` (in order) with these thresholds."""
    n = len(table.family)
    open_ = np.ones(n, dtype=bool)
    correct, cost = np.zeros(n, dtype=bool), np.zeros(n)
    for i, tier in enumerate(tiers):
        cost[open_] += table.cost[tier][open_]
        last = i == len(tiers) - 1
        earlier = tuple(t for t in tiers[:i] if t in QUICK)
        accept = open_ if last else open_ & (table.p[(tier, earlier)] >= thresholds.get(tier, 1.01))
        correct[accept] = table.correct[tier][accept]
        open_ &= ~accept
    return correct, cost


def tiers_of(table: Table) -> Subset:
    """The tiers the table has outputs for, in cascade order."""
    return tuple(t for t in TIERS if t in table.correct)


def candidate_sets(tiers: Subset) -> list[Subset]:
    """Every ordered set of `tiers` (the reasoning tier, if in, always last)."""
    return [s for size in range(1, len(tiers) + 1) for s in combinations(tiers, size)]


@dataclass(frozen=True)
class Choice:
    tiers: Subset
    cost: float  # relative to the best single tier, summed over the type's items' families
    feasible: bool


def best_single(table: Table) -> str:
    return max(tiers_of(table), key=lambda t: (table.correct[t].mean(), -table.cost[t].mean()))


def judge(table: Table, tiers: Subset, thresholds: dict[str, float], slack: float, min_family: int) -> Choice:
    """Is this tier set within `slack` EM of each family's best tier, at no more cost? (relative cost)"""
    correct, cost = replay(table, tiers, thresholds)
    total, ok = 0.0, True
    for family in np.unique(table.family):
        mask = table.family == family
        if mask.sum() < min_family:
            continue
        best = best_single(table.where(mask))
        best_cost = table.cost[best][mask].sum()
        ratio = cost[mask].sum() / best_cost
        ok &= correct[mask].mean() >= table.correct[best][mask].mean() - slack and ratio <= 1.0
        total += ratio * mask.sum()
    return Choice(tiers, total, bool(ok))


def cheapest(table: Table, thresholds: dict[str, float], slack: float, min_family: int = 20) -> Choice:
    choices = [judge(table, s, thresholds, slack, min_family) for s in candidate_sets(tiers_of(table))]
    feasible = [c for c in choices if c.feasible]
    return min(feasible or choices, key=lambda c: (not c.feasible, c.cost))


@dataclass(frozen=True)
class Policy:
    thresholds: dict[str, float]
    per_type: dict[str, Subset]
    fallback: Subset
    cost: float

    def tiers_for(self, task: str) -> Subset:
        return self.per_type.get(task, self.fallback)


def search(table: Table, slack: float) -> Policy:
    """The threshold vector and per-type tier sets with the least total relative cost."""
    types = [t for t in np.unique(table.task) if (table.task == t).sum() >= MIN_TYPE_ITEMS]
    best: Policy | None = None
    for values in product(GRID, repeat=len(QUICK)):
        thresholds = dict(zip(QUICK, values, strict=True))
        per_type = {str(t): cheapest(table.where(table.task == t), thresholds, slack) for t in types}
        fallback = cheapest(table, thresholds, slack, min_family=MIN_TYPE_ITEMS)
        cost = sum(c.cost + (0 if c.feasible else 1e6) for c in per_type.values())
        policy = Policy(thresholds, {k: c.tiers for k, c in per_type.items()}, fallback.tiers, cost)
        if best is None or policy.cost < best.cost:
            best = policy
    assert best is not None
    return best


def apply(table: Table, policy: Policy) -> tuple[np.ndarray, np.ndarray]:
    """Correctness and cost per item when each item's type picks its tier set."""
    correct, cost = np.zeros(len(table.family), dtype=bool), np.zeros(len(table.family))
    for task in np.unique(table.task):
        mask = table.task == task
        c, k = replay(table.where(mask), policy.tiers_for(str(task)), policy.thresholds)
        correct[mask], cost[mask] = c, k
    return correct, cost


def summary(table: Table, policy: Policy, family: str) -> dict[str, float | str]:
    """A family's EM and relative cost under the policy, beside its best single tier."""
    part = table.where(table.family == family)
    correct, cost = apply(part, policy)
    best = best_single(part)
    return {
        "n": len(part.family),
        "best_tier": best,
        "best_em": float(part.correct[best].mean()),
        "em": float(correct.mean()),
        "cost_ratio": float(cost.sum() / part.cost[best].sum()),
    }
