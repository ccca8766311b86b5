"""Escalation paths, budgets, retries and failures of the cascade workflow, with the fake completer."""

from __future__ import annotations

import asyncio

import pytest

from cascade import AllTiersFailedError, FakeReply, UserError
from cascade.types import Attempt, CascadeResult
from tests.unit.scripted import make_cascade


def test_accepts_at_first_tier_when_confidence_meets_threshold() -> None:
    cascade, fake = make_cascade({"small": 0.7, "medium": 0.0, "large": 0.0}, threshold=0.7)
    result = cascade.run("What is 2+2?")
    assert result.accepted and result.answer == "4" and result.final_tier == "small"
    assert [a.decision for a in result.attempts] == ["accept"]
    assert len(fake.calls) == 1


def test_escalates_exactly_when_confidence_below_threshold() -> None:
    cascade, fake = make_cascade({"small": 0.6999, "medium": 0.9, "large": 0.0}, threshold=0.7)
    result = cascade.run("What is 2+3?")
    assert [a.decision for a in result.attempts] == ["escalate", "accept"]
    assert result.answer == "5" and result.final_tier == "medium" and result.accepted
    assert [c.model for c in fake.calls] == ["fake/small", "fake/medium"]
    assert result.attempts[0].confidence == pytest.approx(0.6999)
    assert result.attempts[0].threshold == pytest.approx(0.7)


def test_astream_yields_each_attempt_as_it_ends_then_the_result() -> None:
    cascade, _ = make_cascade({"small": 0.1, "medium": 0.9, "large": 0.0}, threshold=0.7)

    async def collect() -> list[Attempt | CascadeResult]:
        return [item async for item in cascade.astream("What is 2+3?")]

    items = asyncio.run(collect())
    assert [type(i).__name__ for i in items] == ["Attempt", "Attempt", "CascadeResult"]
    result = items[-1]
    assert isinstance(result, CascadeResult)
    assert items[:2] == result.attempts
    assert [a.tier for a in result.attempts] == ["small", "medium"] and result.accepted


def test_stops_at_last_tier_with_its_answer_not_accepted() -> None:
    cascade, _ = make_cascade({"small": 0.1, "medium": 0.2, "large": 0.3}, threshold=0.7)
    result = cascade.run("hard question")
    assert [a.decision for a in result.attempts] == ["escalate", "escalate", "stop"]
    assert result.answer == "6" and result.final_tier == "large"
    assert not result.accepted
    assert "last tier" in result.stop_reason and "last tier" in result.attempts[-1].reason


def test_token_budget_stops_escalation_before_overrun() -> None:
    cascade, fake = make_cascade({"small": 0.1, "medium": 0.1, "large": 0.9}, budget={"max_total_tokens": 12})
    result = cascade.run("What is the answer to this question?")
    assert "token budget" in result.stop_reason
    assert result.attempts[-1].decision == "stop"
    assert "large" not in [a.tier for a in result.attempts]
    assert result.total_tokens <= 12  # reserved before each call: never past the budget
    assert fake.calls[0].max_tokens <= 12


def test_cost_budget_stops_escalation() -> None:
    cascade, _ = make_cascade({"small": 0.1, "medium": 0.1, "large": 0.9}, budget={"max_cost_usd": 0.00002})
    result = cascade.run("What is 2+2?")
    assert "cost budget" in result.stop_reason
    assert result.final_tier in {"small", "medium"}
    assert not result.accepted


def test_budget_caps_completion_tokens_of_a_call() -> None:
    cascade, fake = make_cascade({"small": 0.9, "medium": 0.9, "large": 0.9}, budget={"max_total_tokens": 10})
    cascade.run("Hi")
    assert fake.calls[0].max_tokens == 9  # 10 minus the one-token prompt estimate


def test_transient_errors_are_retried_then_succeed() -> None:
    script = {
        "fake/small": [FakeReply(error="rate_limit", times=2), FakeReply("4")],
        "fake/medium": "5",
        "fake/large": "6",
    }
    cascade, fake = make_cascade({"small": 0.9, "medium": 0.9, "large": 0.9}, script=script)
    result = cascade.run("What is 2+2?")
    assert result.answer == "4" and result.accepted
    assert len(fake.calls) == 3
    assert cascade.completer.retries == 2


def test_permanent_error_falls_through_without_retry() -> None:
    script = {"fake/small": FakeReply(error="auth"), "fake/medium": "5", "fake/large": "6"}
    cascade, fake = make_cascade({"small": 0.9, "medium": 0.9, "large": 0.9}, script=script)
    result = cascade.run("What is 2+3?")
    assert [a.decision for a in result.attempts] == ["failed", "accept"]
    assert "authentication failed" in (result.attempts[0].error or "")
    assert [c.model for c in fake.calls] == ["fake/small", "fake/medium"]


def test_tier_that_keeps_timing_out_falls_through_after_retries() -> None:
    script = {"fake/small": FakeReply(error="timeout"), "fake/medium": "5", "fake/large": "6"}
    cascade, fake = make_cascade({"small": 0.9, "medium": 0.9, "large": 0.9}, script=script)
    result = cascade.run("q")
    assert result.final_tier == "medium"
    assert [c.model for c in fake.calls].count("fake/small") == 3
    assert "timed out" in result.attempts[0].reason


def test_slow_provider_hits_the_timeout_and_falls_through() -> None:
    script = {"fake/small": FakeReply("4", delay_s=5), "fake/medium": "5", "fake/large": "6"}
    cascade, _ = make_cascade(
        {"small": 0.9, "medium": 0.9, "large": 0.9},
        script=script,
        retry={"attempts": 1, "timeout_s": 0.05},
    )
    result = cascade.run("q")
    assert result.attempts[0].decision == "failed" and "no answer within" in (result.attempts[0].error or "")
    assert result.answer == "5"


def test_every_tier_failing_is_reported_not_lost() -> None:
    script = {"*": FakeReply(error="server")}
    cascade, _ = make_cascade({"small": 0.9, "medium": 0.9, "large": 0.9}, script=script)
    result = cascade.run("q")
    assert result.answer is None and not result.accepted
    assert result.error == "every tier failed"
    assert [a.decision for a in result.attempts] == ["failed", "failed", "failed"]
    with pytest.raises(AllTiersFailedError) as info:
        result.raise_for_error()
    assert len(info.value.attempts) == 3


def test_empty_answer_escalates_and_is_never_accepted_silently() -> None:
    script = {"fake/small": "", "fake/medium": "   ", "fake/large": ""}
    cascade, _ = make_cascade({"small": 0.0, "medium": 0.0, "large": 0.0}, script=script)
    result = cascade.run("q")
    assert result.answer is None and result.error == "no tier gave a usable answer"


def test_totals_equal_sum_over_attempts() -> None:
    cascade, _ = make_cascade({"small": 0.1, "medium": 0.8, "large": 0.0})
    result = cascade.run("What is 2+3?")
    data = result.to_json_dict()
    assert data["total_tokens"] == sum(a["prompt_tokens"] + a["completion_tokens"] for a in data["attempts"])
    assert data["total_cost_usd"] == pytest.approx(sum(a["cost_usd"] for a in data["attempts"]))
    assert data["total_cost_usd"] > 0
    for key in ("answer", "accepted", "final_tier", "attempts", "total_tokens", "total_cost_usd"):
        assert key in data
    for key in (
        "tier",
        "model",
        "answer",
        "prompt_tokens",
        "completion_tokens",
        "cost_usd",
        "latency_s",
        "confidence",
        "decision",
    ):
        assert key in data["attempts"][0]


def test_cost_uses_tier_prices() -> None:
    script = {
        "fake/small": FakeReply("4", prompt_tokens=100, completion_tokens=10),
        "fake/medium": "5",
        "fake/large": "6",
    }
    cascade, _ = make_cascade({"small": 0.9, "medium": 0.9, "large": 0.9}, script=script)
    attempt = cascade.run("q").attempts[0]
    assert attempt.cost_usd == pytest.approx(100 * 1e-7 + 10 * 2e-7)


def test_batch_keeps_input_order() -> None:
    script = {"fake/small": lambda req: req.messages[-1]["content"].upper(), "fake/medium": "m", "fake/large": "l"}
    cascade, _ = make_cascade({"small": 0.9, "medium": 0.9, "large": 0.9}, script=script)
    results = cascade.batch([f"q{i}" for i in range(20)], concurrency=5)
    assert [r.answer for r in results] == [f"Q{i}" for i in range(20)]


def test_sync_api_inside_event_loop_is_a_clear_error() -> None:
    cascade, _ = make_cascade({"small": 0.9, "medium": 0.9, "large": 0.9})

    async def inside() -> None:
        with pytest.raises(UserError, match="arun"):
            cascade.run("q")
        result = await cascade.arun("q")
        assert result.accepted

    asyncio.run(inside())


def test_empty_query_is_rejected() -> None:
    cascade, _ = make_cascade({"small": 0.9, "medium": 0.9, "large": 0.9})
    with pytest.raises(UserError):
        cascade.run("  ")


def test_api_key_comes_from_environment_and_never_reaches_the_result(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_PROVIDER_KEY", "sk-secret-1234567890")
    tiers = [{"name": "small", "model": "fake/small", "api_key_env": "TEST_PROVIDER_KEY"}]
    cascade, fake = make_cascade({"small": 0.9}, tiers=tiers)
    result = cascade.run("q")
    assert fake.calls[0].api_key == "sk-secret-1234567890"
    assert "sk-secret" not in result.model_dump_json()
    assert "sk-secret" not in repr(fake.calls[0])
