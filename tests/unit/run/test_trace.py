"""The rich trace, compared as whole text (as rich's own tests do): every line a user reads is pinned.

Run-dependent timings (latencies, the checkpoint thread id) are set to fixed values first; everything
else comes from real runs on the fake completer.
"""

from __future__ import annotations

from cascade import FakeReply
from cascade.run.trace import render_text
from cascade.types import Attempt, CascadeResult, Completion, EarlyExitTrace, Probe
from tests.unit.ensemble_helpers import ensemble_cascade
from tests.unit.scripted import TIERS, make_cascade


def steady(result: CascadeResult) -> CascadeResult:
    """`result` with fixed timings: 1.25 s per attempt, 0.5 s per ensemble member, 2 ms per node."""
    attempts = [
        a.model_copy(
            update={"latency_s": 1.25, "members": [m.model_copy(update={"latency_s": 0.5}) for m in a.members]}
        )
        for a in result.attempts
    ]
    steps = [s.model_copy(update={"latency_s": 0.002}) for s in result.steps]
    thread = "thread-1" if result.thread_id else None
    return result.model_copy(update={"attempts": attempts, "steps": steps, "thread_id": thread})


def trace(result: CascadeResult, width: int = 120) -> str:
    return render_text(steady(result), width=width)


def test_an_escalation_then_an_acceptance() -> None:
    cascade, _ = make_cascade({"small": 0.3, "medium": 0.9, "large": 0.0})
    assert trace(cascade.run("What is 2+3?", tag="maths")) == EXPECTED_ESCALATION


def test_a_failed_tier() -> None:
    script = {"fake/small": FakeReply(error="auth"), "fake/medium": "5", "fake/large": "6"}
    cascade, _ = make_cascade({"small": 0.9, "medium": 0.9, "large": 0.9}, script=script)
    assert trace(cascade.run("q")) == EXPECTED_FAILURE


def test_an_ensemble_tier_lists_its_members() -> None:
    script = {
        "fake/a": FakeReply("Paris", prompt_tokens=10, completion_tokens=2),
        "fake/b": FakeReply(error="auth"),
        "fake/c": FakeReply("Paris", prompt_tokens=10, completion_tokens=3),
    }
    cascade, _ = ensemble_cascade(script)
    assert trace(cascade.run("Capital of France?"), width=140) == EXPECTED_ENSEMBLE


def test_an_approval_waits_then_is_refused() -> None:
    tiers = [dict(tier, approve=True) if tier["name"] == "large" else tier for tier in TIERS]
    cascade, _ = make_cascade({"small": 0.1, "medium": 0.1, "large": 0.9}, tiers=tiers)
    paused = cascade.run("What is 2+2?")
    assert trace(paused) == EXPECTED_WAITING
    refused = cascade.resume(paused.thread_id or "", approve=False, note="too pricey")
    assert trace(refused) == EXPECTED_REFUSED


def test_an_early_exit_of_a_reasoning() -> None:
    probes = (Probe(40, " 12.", (-2.0,), 3, 1), Probe(90, " 10.", (-0.01,), 3, 3))
    completion = Completion("... The answer is 10.", "local/m", 70, 94, finish_reason="early_exit", probes=probes)
    attempt = Attempt(
        tier="think",
        model="local/m",
        answer="10",
        prompt_tokens=70,
        completion_tokens=94,
        confidence=0.93,
        threshold=0.5,
        decision="accept",
        reason="min token probability 0.930 over 4 tokens; confidence 0.93 >= threshold 0.50",
        early_exit=EarlyExitTrace.of(completion, 384),
        verifier="logprob",
    )
    result = CascadeResult(query="q", answer="10", accepted=True, final_tier="think", attempts=[attempt])
    assert trace(result.model_copy(update={"router": "threshold"}), width=160) == EXPECTED_EARLY_EXIT


EXPECTED_ESCALATION = """\
cascade query: What is 2+3?  tag: maths  router: threshold
├── small (fake/small) → ESCALATE
│   ├── answer: 4
│   ├── tokens 3+1 · cost $5.00e-07 · latency 1.25s · confidence 0.30 (scripted) / threshold 0.70
│   ├── generate 3+1 tokens · $5.00e-07 · 2.0 ms │ verify 0+0 tokens · $0 · 2.0 ms
│   └── why: scripted small; confidence 0.30 < threshold 0.70
└── medium (fake/medium) → ACCEPT
    ├── answer: 5
    ├── tokens 3+1 · cost $5.00e-06 · latency 1.25s · confidence 0.90 (scripted) / threshold 0.70
    ├── generate 3+1 tokens · $5.00e-06 · 2.0 ms │ verify 0+0 tokens · $0 · 2.0 ms
    └── why: scripted medium; confidence 0.90 >= threshold 0.70
answer: 5  (accepted, final tier medium)
total: 8 tokens · $5.50e-06 · 2.50s · 2 attempt(s)
"""
EXPECTED_FAILURE = """\
cascade query: q  router: threshold
├── small (fake/small) → FAILED
│   ├── error: fake/small: authentication failed (401) (fake)
│   ├── tokens 0+0 · cost $0 · latency 1.25s
│   ├── generate 0+0 tokens · $0 · 2.0 ms │ verify 0+0 tokens · $0 · 2.0 ms
│   └── why: provider failed: fake/small: authentication failed (401) (fake)
└── medium (fake/medium) → ACCEPT
    ├── answer: 5
    ├── tokens 1+1 · cost $3.00e-06 · latency 1.25s · confidence 0.90 (scripted) / threshold 0.70
    ├── generate 1+1 tokens · $3.00e-06 · 2.0 ms │ verify 0+0 tokens · $0 · 2.0 ms
    └── why: scripted medium; confidence 0.90 >= threshold 0.70
answer: 5  (accepted, final tier medium)
total: 2 tokens · $3.00e-06 · 2.50s · 2 attempt(s)
"""
EXPECTED_ENSEMBLE = """\
cascade query: Capital of France?  router: threshold
└── vote (fake/a + fake/b + fake/c) → ACCEPT
    ├── answer: Paris
    ├── tokens 20+5 · cost $1.74e-04 · latency 1.25s · confidence 0.67 (vote) / threshold 0.60
    ├── generate 20+5 tokens · $1.74e-04 · 2.0 ms │ verify 0+0 tokens · $0 · 2.0 ms
    ├── members (3)
    │   ├── ✓ fake/a · answer: Paris · tokens 10+2 · cost $1.40e-05 · 0.50s
    │   ├── · fake/b · error: fake/b: authentication failed (401) (fake) · tokens 0+0 · cost $0 · 0.50s
    │   └── ✓ fake/c · answer: Paris · tokens 10+3 · cost $1.60e-04 · 0.50s
    └── why: vote: weight 2 of 3 for 'Paris' (1 distinct); confidence 0.67 >= threshold 0.60
answer: Paris  (accepted, final tier vote)
total: 25 tokens · $1.74e-04 · 1.25s · 1 attempt(s)
"""
EXPECTED_WAITING = """\
cascade query: What is 2+2?  router: threshold
├── small (fake/small) → ESCALATE
│   ├── answer: 4
│   ├── tokens 3+1 · cost $5.00e-07 · latency 1.25s · confidence 0.10 (scripted) / threshold 0.70
│   ├── generate 3+1 tokens · $5.00e-07 · 2.0 ms │ verify 0+0 tokens · $0 · 2.0 ms
│   └── why: scripted small; confidence 0.10 < threshold 0.70
├── medium (fake/medium) → ESCALATE
│   ├── answer: 5
│   ├── tokens 3+1 · cost $5.00e-06 · latency 1.25s · confidence 0.10 (scripted) / threshold 0.70
│   ├── generate 3+1 tokens · $5.00e-06 · 2.0 ms │ verify 0+0 tokens · $0 · 2.0 ms
│   └── why: scripted medium; confidence 0.10 < threshold 0.70
└── approve large (fake/large, at most $0.0013) → WAITING (thread thread-1)
answer: 5  (not accepted, final tier medium)
total: 8 tokens · $5.50e-06 · 2.50s · 2 attempt(s) · stop: awaiting approval of tier 'large'
"""
EXPECTED_REFUSED = """\
cascade query: What is 2+2?  router: threshold
├── small (fake/small) → ESCALATE
│   ├── answer: 4
│   ├── tokens 3+1 · cost $5.00e-07 · latency 1.25s · confidence 0.10 (scripted) / threshold 0.70
│   ├── generate 3+1 tokens · $5.00e-07 · 2.0 ms │ verify 0+0 tokens · $0 · 2.0 ms
│   └── why: scripted small; confidence 0.10 < threshold 0.70
├── medium (fake/medium) → ESCALATE
│   ├── answer: 5
│   ├── tokens 3+1 · cost $5.00e-06 · latency 1.25s · confidence 0.10 (scripted) / threshold 0.70
│   ├── generate 3+1 tokens · $5.00e-06 · 2.0 ms │ verify 0+0 tokens · $0 · 2.0 ms
│   └── why: scripted medium; confidence 0.10 < threshold 0.70
└── approve large → REFUSED too pricey
answer: 5  (not accepted, final tier medium)
total: 8 tokens · $5.50e-06 · 2.50s · 2 attempt(s) · stop: tier 'large' not approved: too pricey
"""
EXPECTED_EARLY_EXIT = """\
cascade query: q  router: threshold
└── think (local/m) → ACCEPT
    ├── answer: 10
    ├── tokens 70+94 · cost $0 · latency 1.25s · confidence 0.93 (logprob) / threshold 0.50
    ├── reasoning: early exit after 90 reasoning tokens, answer '10' converged (2 answer probe(s), 10 tokens); 294 of the 384-token budget not generated
    └── why: min token probability 0.930 over 4 tokens; confidence 0.93 >= threshold 0.50
answer: 10  (accepted, final tier think)
total: 164 tokens · $0 · 1.25s · 1 attempt(s)
"""
