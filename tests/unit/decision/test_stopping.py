"""The stop rule: accepted ends the run; an escalation goes to the next tier the plan does not skip,
or becomes a stop with the reason (last tier, every later tier skipped, the budget)."""

from __future__ import annotations

from cascade.decision.stopping import ALL_SKIPPED, LAST_TIER, Settled, called_from, first_called, settle

TIERS = ["small", "medium", "large"]


def test_an_accepted_answer_ends_the_run() -> None:
    assert settle("accept", 0, TIERS) == Settled("accept", "accepted", None)


def test_an_escalation_goes_to_the_next_tier_not_skipped() -> None:
    assert settle("escalate", 0, TIERS) == Settled("escalate", "", 1)
    assert settle("escalate", 0, TIERS, skip={"medium"}) == Settled("escalate", "", 2)


def test_an_escalation_that_cannot_happen_is_a_stop_with_its_reason() -> None:
    assert settle("escalate", 2, TIERS) == Settled("stop", LAST_TIER, None)
    assert settle("escalate", 0, TIERS, skip={"medium", "large"}) == Settled("stop", ALL_SKIPPED, None)
    blocked = settle("escalate", 0, TIERS, blocked=lambda j: f"tier {TIERS[j]} over budget")
    assert blocked == Settled("stop", "tier medium over budget", 1)


def test_a_failed_call_falls_through_and_keeps_its_decision() -> None:
    assert settle("failed", 0, TIERS) == Settled("failed", "", 1)
    assert settle("failed", 2, TIERS) == Settled("failed", LAST_TIER, None)


def test_where_a_run_starts() -> None:
    assert first_called(0, TIERS) == 0
    assert first_called(7, TIERS) == 2 and first_called(-3, TIERS) == 0
    assert first_called(0, TIERS, skip={"small"}) == 1
    assert first_called(0, TIERS, skip=set(TIERS)) == 2  # never left unanswered
    assert called_from(3, TIERS) is None
