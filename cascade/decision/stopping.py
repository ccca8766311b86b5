"""The stop rule, written once: after a tier's decision, whether the run goes on, to which tier, or why not.

A tier whose answer is accepted ends the run ("accepted"). One that escalates goes on to the next
tier its route plan does not skip, unless there is none ("last tier reached", "the later tiers are
skipped for this query") or the budget cannot pay for that tier: the escalation then becomes a stop,
and the reason is written. Live runs (`cascade.run.graph`) and the replay of a config on a log
(`cascade.eval.analysis.config_replay`) both take it from here; sweeps over many thresholds at once
take its array form, `acceptance.stopping_tier`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from cascade.types import DecisionAction

LAST_TIER = "last tier reached"
ALL_SKIPPED = "the later tiers are skipped for this query"


def called_from(index: int, tiers: Sequence[str], skip: Collection[str] = ()) -> int | None:
    """The first tier from `index` on that the plan does not skip; None if there is none."""
    return next((i for i in range(index, len(tiers)) if tiers[i] not in skip), None)


def first_called(start: int, tiers: Sequence[str], skip: Collection[str] = ()) -> int:
    """Where a run starts: the plan's start (clamped to the tiers), or the next tier it does not skip;
    the last tier when the plan would skip every one (a query is never left unanswered)."""
    found = called_from(min(max(start, 0), len(tiers) - 1), tiers, skip)
    return len(tiers) - 1 if found is None else found


@dataclass(frozen=True)
class Settled:
    """What follows a tier's decision: the decision as it stands (an escalation that cannot happen
    becomes `stop`), why the run ends here ("" when it goes on), and the tier it goes on to."""

    decision: DecisionAction
    why: str
    next_tier: int | None


def settle(
    decision: DecisionAction,
    index: int,
    tiers: Sequence[str],
    skip: Collection[str] = (),
    blocked: Callable[[int], str] = lambda _: "",
) -> Settled:
    """The stop rule after tier `index` decided `decision`; `blocked(j)` says why the budget cannot pay
    for tier `j` ("" when it can)."""
    onward = called_from(index + 1, tiers, skip)
    if decision == "accept":
        return Settled(decision, "accepted", None)
    if index + 1 >= len(tiers):
        why = LAST_TIER
    elif onward is None:
        why = ALL_SKIPPED
    else:
        why = blocked(onward)
    if why and decision == "escalate":
        decision = "stop"
    return Settled(decision, why, onward)
