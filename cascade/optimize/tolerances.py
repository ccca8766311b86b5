"""When no cascade pays at the asked tolerance: what each looser tolerance would buy, and what a vote
threshold means in words.

"No cascade pays" alone leaves a user guessing whether 0.02 would do. The search is run again at
0.01, 0.02, 0.03 and 0.05 (the tier runs and out-of-fold scores are cached, so this is mostly array
work), each choice made on its own simultaneous bound, so the answer at each tolerance is the one
`tune` would give if asked for it (the printed next command reproduces it).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from cascade.optimize.select import (
    Objective,
    Reference,
    Selection,
    Summary,
    choose_tolerance,
    feasible,
    selection_for,
)

TOLERANCES = (0.01, 0.02, 0.03, 0.05)


@dataclass(frozen=True)
class TolerancePoint:
    """At one tolerance: the cascade `tune` would choose there (None: the strongest model alone), and the
    bound it was chosen on."""

    tolerance: float
    chosen: Summary | None
    selection: Selection

    def as_dict(self) -> dict[str, Any]:
        s = self.chosen
        if s is None:
            return {"tolerance": self.tolerance, "chosen": None}
        chosen = {"cascade": s.structure.label(), "cost_ratio": s.ratio, "em_delta": s.diff, "bound": self.bound}
        return {"tolerance": self.tolerance, "chosen": chosen}

    @property
    def bound(self) -> float | None:
        return None if self.chosen is None else self.selection.bound(self.chosen)


def at_tolerances(
    search: Callable[[Objective], list[Summary]],
    ref: Reference,
    objective: Objective,
    tolerances: Sequence[float] = TOLERANCES,
    search_to: float = 0.20,
) -> list[TolerancePoint]:
    """Each tolerance's choice among the candidates `search` visits at it; when none of `tolerances` buys a
    cascade, also the first hundredth up to `search_to` that does."""

    def point(tolerance: float) -> TolerancePoint:
        at = replace(objective, tolerance=tolerance)
        found = search(at)
        selection = selection_for(found, ref, at)
        ok = [s for s in found if s.structure.gates and feasible(s, at, selection)]
        return TolerancePoint(tolerance, choose_tolerance(ok, at, selection) if ok else None, selection)

    points = [point(t) for t in tolerances]
    further = (round(t / 100, 2) for t in range(round(100 * max(tolerances)) + 1, round(100 * search_to) + 1))
    while all(p.chosen is None for p in points) and (t := next(further, None)) is not None:
        if (found := point(t)).chosen is not None:
            points.append(found)
    return points


def vote_threshold_words(threshold: float, weights: Sequence[float]) -> str:
    """A vote gate's threshold as the agreement it asks for."""
    members = len(weights)
    if threshold >= 1 - 1e-9:
        everyone = "both models" if members == 2 else f"all {members} models"
        return f"kept only when {everyone} agree (vote threshold 1: any disagreement escalates)"
    if len(set(weights)) > 1:
        return f"kept when the models that agree hold at least {threshold:.0%} of the vote weight"
    needed = max(1, math.ceil(threshold * members - 1e-9))
    return f"kept when at least {needed} of {members} models agree (vote threshold {threshold:.4g})"


def vote_notes(s: Summary) -> list[str]:
    """What each vote gate's threshold asks, in words (a threshold of 1 reads like a typo otherwise)."""
    return [
        f"{gate.spec.name}: its answer is {vote_threshold_words(threshold, gate.spec.member_weights)}."
        for gate, threshold in zip(s.structure.gates, s.thresholds, strict=False)
        if gate.verifier == "vote"
    ]
