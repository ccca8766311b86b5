"""The monitor's drift guard on its own: a label-free shift of the traffic (here a jump of answers accepted
below) starts a probe, which the free labels of escalations then confirm as an alarm or lift."""

from __future__ import annotations

import itertools

import pytest

from cascade.audit.monitor import LEVELS, PROBE_MAX_RUNS, PROBE_RUNS, Monitor
from cascade.audit.shift import BASELINE, CHECK_EVERY, RECENT
from cascade.config.audit import AuditConfig
from cascade.config.schema import TierConfig
from cascade.types import Attempt, CascadeResult

LARGE = TierConfig.model_validate({"name": "large", "model": "fake/large"})
_ids = itertools.count()


def run(small: str, large: str | None, confidence: float = 0.9) -> CascadeResult:
    """A run the small tier answered (accepted unless `large` answered after it)."""
    decision = "accept" if large is None else "escalate"
    attempts = [Attempt(tier="small", model="s", answer=small, confidence=confidence, threshold=0.5,
                        decision=decision)]  # fmt: skip
    if large is not None:
        attempts.append(Attempt(tier="large", model="l", answer=large, cost_usd=1.0, decision="accept"))
    final = "small" if large is None else "large"
    return CascadeResult(query="q", answer=large or small, accepted=True, final_tier=final, attempts=attempts,
                         run_id=f"r{next(_ids)}")  # fmt: skip


def serve(monitor: Monitor, result: CascadeResult) -> None:
    below = result.final_tier == "small"
    monitor.served(result, 0.05 if below else None, False, "text")


@pytest.fixture
def monitor() -> Monitor:
    guarded = Monitor(AuditConfig(rate=0.05, min_agreement=0.9), LARGE, "t")
    for i in range(BASELINE):  # half the answers accepted below, as usual: the baseline
        serve(guarded, run("Paris", None if i % 2 else "Paris"))
    assert guarded.level == 0 and guarded.probes == 0
    return guarded


def test_a_jump_in_accepting_starts_a_probe_that_disagreeing_escalations_turn_into_an_alarm(monitor: Monitor) -> None:
    for _ in range(30):
        serve(monitor, run("Lyon", None))  # suddenly every answer is accepted below
        if monitor.level:
            break
    assert monitor.level == LEVELS and monitor.probes == 1 and monitor.alarms == 0
    for _ in range(PROBE_RUNS):
        serve(monitor, run("Lyon", "Paris"))  # escalated now: the small tier's answers are judged for free
        if monitor.alarms:
            break
    assert monitor.alarms == 1 and monitor.level == LEVELS
    for _ in range(PROBE_RUNS):
        serve(monitor, run("Lyon", "Paris"))
    assert monitor.level == LEVELS  # a proven break is not lifted by the probe's end


def test_a_probe_finding_nothing_is_lifted(monitor: Monitor) -> None:
    while not monitor.level:
        serve(monitor, run("Paris", None))
    for _ in range(PROBE_RUNS):
        serve(monitor, run("Paris", "Paris"))
    assert monitor.level == 0 and monitor.alarms == 0 and monitor.probes == 1
    snap = monitor.snapshot()
    assert snap.promise.estimate == 1.0 and snap.spend.escalated == BASELINE // 2 + PROBE_RUNS
    for _ in range(2 * BASELINE):  # every answer still accepted below: the new normal, recorded again
        serve(monitor, run("Paris", None))
    assert monitor.probes == 1 and monitor.level == 0


def test_confidences_rated_higher_start_a_probe_though_as_many_are_accepted(monitor: Monitor) -> None:
    """The small tier's confidence was 0.9 in the baseline; a swapped model now gets 0.99 on the same share."""
    for i in range(max(RECENT)):
        serve(monitor, run("Lyon", None if i % 2 else "Paris", confidence=0.99))
        if monitor.level:
            break
    assert monitor.level == LEVELS and monitor.probes == 1 and i < min(RECENT) + CHECK_EVERY


def test_no_target_no_guard() -> None:
    unguarded = Monitor(AuditConfig(rate=0.05), LARGE, "t")
    for i in range(300):
        serve(unguarded, run("Lyon", None if i > 150 or i % 2 else "Paris"))
    assert unguarded.level == 0 and unguarded.probes == 0


def test_a_probe_pointing_to_a_break_goes_on_until_it_is_proven(monitor: Monitor) -> None:
    while not monitor.level:
        serve(monitor, run("Lyon", None))
    for i in range(PROBE_MAX_RUNS):  # right 3 times in 4: below 0.9, proven after ~80 runs, not 50
        serve(monitor, run("Lyon" if i % 4 == 3 else "Paris", "Paris"))
        if monitor.alarms:
            break
    assert monitor.alarms == 1 and monitor.level == LEVELS and PROBE_RUNS <= i < PROBE_MAX_RUNS


def test_a_level_that_served_nothing_below_is_no_proof_of_safety() -> None:
    from cascade.audit.tally import Tally

    never_below = Tally()
    for _ in range(80):
        never_below.serve(False, 1.0)
    assert never_below.interval(0.05).low == 1.0  # what was served agreed, exactly
    assert never_below.interval(0.05, conditional=True).low < 0.9  # what the next runs will do is not known
