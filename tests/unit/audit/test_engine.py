"""Live audits in the engine and the Python API: off the request path, stored, counted, and the drift guard."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cascade.completers.fake import FakeCompleter, FakeReply
from cascade.config.schema import CascadeConfig
from cascade.run.engine import Cascade
from cascade.store import open_store
from cascade.types import CompletionRequest


def config(**audit: Any) -> CascadeConfig:
    cheap = {"input_per_token": 1e-7, "output_per_token": 1e-7}
    dear = {"input_per_token": 1e-5, "output_per_token": 1e-5}
    return CascadeConfig.from_dict({
        "name": "audited",
        "tiers": [
            {"name": "small", "model": "fake/small", "logprobs": True, "prices": cheap},
            {"name": "large", "model": "fake/large", "logprobs": True, "prices": dear},
        ],
        "verifier": {"type": "logprob"},
        "router": {"type": "threshold", "threshold": 0.6},
        "audit": {"rate": 1.0, **audit},
    })  # fmt: skip


def gated(gate: threading.Event) -> Callable[[CompletionRequest], FakeReply]:
    """large, answering France only once `gate` is set: an audit of that answer stays in flight until
    the test lets it finish (audits run on their own thread, so only the audit waits)."""

    def large(request: CompletionRequest) -> FakeReply:
        text = str(request.messages[-1]["content"])
        if "France" in text:
            gate.wait(10)
        return FakeReply("4" if "2+2" in text else "Paris", logprobs=[-0.01])

    return large


def fake(large: list[FakeReply] | Callable[[CompletionRequest], FakeReply] | None = None) -> FakeCompleter:
    """small: right about arithmetic, confidently wrong about France, unsure otherwise; large: right."""
    sure = [-0.01]
    small = [FakeReply("4", match=r"2\+2", logprobs=sure), FakeReply("Lyon", match="France", logprobs=sure),
             FakeReply("?", logprobs=[-3.0])]  # fmt: skip
    if callable(large):
        return FakeCompleter({"fake/small": small, "fake/large": large})
    right = [FakeReply("4", match=r"2\+2", logprobs=sure), FakeReply("Paris", logprobs=sure)]
    return FakeCompleter({"fake/small": small, "fake/large": [*(large or []), *right]})


def test_answers_served_below_are_audited_in_the_background_and_the_pairs_stored(tmp_path: Path) -> None:
    store_path = str(tmp_path / "s.sqlite")
    gate = threading.Event()  # holds the audit's reference call until the user has the answer
    cascade = Cascade(config(), completer=fake(gated(gate)), learning_store=store_path)
    served = cascade.run("Capital of France?")
    in_flight = cascade.auditor.monitor.snapshot().pending if cascade.auditor else 0
    gate.set()
    assert in_flight == 1, "the user's answer waited for its audit"
    assert (served.answer, served.final_tier, served.audit_rate, served.audited) == ("Lyon", "small", 1.0, True)
    escalated = cascade.run("Who wrote it?")
    assert (escalated.final_tier, escalated.audit_rate, escalated.audited) == ("large", None, False)
    assert cascade.close() == 0  # waits for the audit in flight
    store = open_store(store_path)
    try:
        pairs = [r.pair for r in store.reference_pairs()]
    finally:
        store.close()
    by_source = {p.source: p for p in pairs}
    audit, free = by_source["audit"], by_source["escalation"]
    assert (audit.run_id, audit.answer, audit.reference, audit.agree, audit.weight, audit.served) == (
        served.run_id, "Lyon", "Paris", False, 1.0, True)  # fmt: skip
    assert audit.cost_usd > 0 and audit.tokens > 0 and audit.confidence == pytest.approx(0.99, abs=0.01)
    assert (free.run_id, free.answer, free.reference, free.agree, free.served, free.cost_usd) == (
        escalated.run_id, "?", "Paris", False, False, 0.0)  # fmt: skip
    snap = cascade.auditor.monitor.snapshot() if cascade.auditor else None
    assert snap is not None and snap.spend.audits == {"agree": 0, "disagree": 1, "failed": 0, "dropped": 0}
    assert snap.spend.audits_usd == pytest.approx(audit.cost_usd)
    assert snap.promise.estimate == pytest.approx(0.5) and snap.promise.low == snap.promise.high  # rate 1: exact


def test_audit_spend_is_never_the_runs_spend() -> None:
    cascade = Cascade(config(), completer=fake())
    result = cascade.run("2+2?")
    cascade.close()
    assert result.total_cost_usd == sum(a.cost_usd for a in result.attempts) and len(result.attempts) == 1
    snap = cascade.auditor.monitor.snapshot() if cascade.auditor else None
    assert snap is not None and snap.spend.audits_usd > 0
    spent, audits = snap.spend.runs_usd, snap.spend.audits_usd
    assert spent == pytest.approx(result.total_cost_usd)
    assert snap.spend.cost_ratio == pytest.approx((spent + audits) / audits)


def test_a_failing_reference_fails_the_audit_not_the_request() -> None:
    cascade = Cascade(config(), completer=fake([FakeReply(error="auth", match="France")]))
    result = cascade.run("Capital of France?")
    cascade.close()
    assert result.answer == "Lyon" and result.error is None
    snap = cascade.auditor.monitor.snapshot() if cascade.auditor else None
    assert snap is not None and snap.spend.audits["failed"] == 1
    assert snap.promise.low == 0.0  # an audit without a verdict counts against the promise


def test_a_full_queue_drops_audits_and_close_drops_what_is_still_running() -> None:
    slow = [FakeReply("4", match=r"2\+2", logprobs=[-0.01], delay_s=5.0)]
    cascade = Cascade(config(concurrency=1, max_queue=1), completer=fake(slow))
    for _ in range(4):
        assert cascade.run("2+2?").answer == "4"
    assert cascade.close(timeout=0.2) == 2  # one running, one waiting: both cut at close
    snap = cascade.auditor.monitor.snapshot() if cascade.auditor else None
    assert snap is not None and snap.spend.audits["dropped"] == 4 and snap.pending == 0


def test_sampling_follows_the_rate_and_the_run_id() -> None:
    cascade = Cascade(config(rate=0.3, seed=3), completer=fake())
    results = [cascade.run("2+2?") for _ in range(200)]
    cascade.close()
    from cascade.audit.selection import is_audited

    assert all(r.audited == is_audited(0.3, 3, r.run_id) for r in results)
    assert 40 <= sum(r.audited for r in results) <= 80 and all(r.audit_rate == 0.3 for r in results)


def verdicts_in(cascade: Cascade) -> None:
    """Wait until no audit is in flight: the order of verdicts, not a sleep, drives the guard (a fixed
    sleep let a loaded machine serve answers past the proof before their audits came back)."""
    deadline = time.monotonic() + 30
    while cascade.auditor and cascade.auditor.monitor.snapshot().pending and time.monotonic() < deadline:
        time.sleep(0.005)


def test_the_drift_guard_escalates_everything_then_relaxes_when_the_cheap_tier_recovers() -> None:
    answers = {"now": "Lyon"}
    small = lambda request: FakeReply(answers["now"], logprobs=[-0.01])  # noqa: E731
    completer = FakeCompleter({"fake/small": small, "fake/large": "Paris"})
    cascade = Cascade(config(min_agreement=0.8), completer=completer)
    monitor = cascade.auditor.monitor if cascade.auditor else None
    assert monitor is not None
    served = []
    while monitor.level == 0 and len(served) < 30:  # every audit disagrees: a handful of answers prove it
        served.append(cascade.run(f"Capital of France, take {len(served)}?"))
        verdicts_in(cascade)  # the audit's verdict arrives in the background
    assert monitor.level == 4 and monitor.alarms == 1 and 3 <= len(served) <= 15
    assert all(r.final_tier == "small" for r in served)
    guarded = cascade.run("Capital of France, again?")
    assert guarded.final_tier == "large" and "drift guard" in guarded.attempts[0].reason
    answers["now"] = "Paris"  # the cheap tier is right again: escalations show it, for free
    tiers = []
    while monitor.level > 0 and len(tiers) < 300:  # ~100 clean escalations prove <= 20% disagreement
        tiers.append(cascade.run(f"Capital of France, round {len(tiers)}?").final_tier)
    after = cascade.run("Capital of France, at last?")
    cascade.close()
    assert monitor.level == 0 and 50 <= len(tiers) < 300 and set(tiers) == {"large"} and after.final_tier == "small"
