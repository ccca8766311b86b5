"""Self-verification against a FakeCompleter judge: yes/no shares, requests, usage, failures."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from cascade.completers.fake import FakeCompleter, FakeReply, Script
from cascade.config.schema import CascadeConfig, PluginSpec, Prices, TierConfig
from cascade.protocols import VerifyContext
from cascade.registry import BuildContext
from cascade.types import Completion, Verdict
from verifiers import SelfVerifyVerifier

PRICES = Prices(input_per_token=0.001, output_per_token=0.002)
TIER = TierConfig(
    name="small", model="fake/small", api_base="http://localhost:9999/v1", prices=PRICES, sample_temperature=0.9
)


async def _no_draw() -> tuple[Completion, str | None]:
    raise AssertionError("self_verify must not draw samples")


def judge_run(
    script: Script, verifier: Any, answer: str | None = "Paris", model: str = "fake/small"
) -> tuple[Verdict, FakeCompleter]:
    judge = FakeCompleter({model: script})
    samples = [Completion(answer or "", TIER.model, 5, 1)]
    ctx = VerifyContext(
        query="What is the capital of France?",
        tier=TIER,
        tier_index=0,
        samples=samples,
        answers=[answer],
        previous=[],
        draw=_no_draw,
        judge=judge,
        extract=lambda text: text,
    )
    return asyncio.run(verifier.verify(ctx)), judge


def build(**params: Any) -> Any:
    config = CascadeConfig.from_dict({"tiers": [{"name": "a", "model": "fake/a"}]})
    return BuildContext(config).build("verifier", PluginSpec(type="self_verify", **params), ("verifier",))


def test_yes_gives_full_confidence_and_reports_usage() -> None:
    verdict, _ = judge_run(FakeReply("Yes.", prompt_tokens=30, completion_tokens=2), build())
    assert verdict.confidence == 1.0 and "1/1" in verdict.reason
    assert (verdict.usage.prompt_tokens, verdict.usage.completion_tokens) == (30, 2)
    assert verdict.usage.cost_usd == pytest.approx(30 * 0.001 + 2 * 0.002)
    assert verdict.answer is None  # the judge scores the answer; it does not replace it


def test_the_request_uses_the_tiers_model_endpoint_and_prices() -> None:
    _, judge = judge_run("yes", build())
    (request,) = judge.calls
    assert request.model == "fake/small" and request.api_base == "http://localhost:9999/v1"
    assert (request.input_price, request.output_price) == (0.001, 0.002)
    assert request.max_tokens == 8 and request.temperature == 0.0
    content = request.messages[-1]["content"]
    assert "What is the capital of France?" in content and "Paris" in content and "yes or no" in content


def test_no_gives_zero() -> None:
    verdict, _ = judge_run("No, it is not.", build())
    assert verdict.confidence == 0.0 and verdict.details["no"] == 1


def test_several_judgements_give_the_share_of_yes() -> None:
    verdict, judge = judge_run([FakeReply(text, times=1) for text in ("yes", "no", "maybe")], build(samples=3))
    assert verdict.confidence == pytest.approx(1 / 3)
    assert (verdict.details["yes"], verdict.details["no"], verdict.details["unclear"]) == (1, 1, 1)
    assert [c.seed for c in judge.calls] == [0, 1, 2]
    assert {c.temperature for c in judge.calls} == {0.9}  # the tier's sample temperature


def test_another_judge_model_gets_no_tier_endpoint_or_prices() -> None:
    verdict, judge = judge_run("yes", build(model="fake/judge", temperature=0.3, max_tokens=4), model="fake/judge")
    (request,) = judge.calls
    assert request.model == "fake/judge" and request.api_base is None and request.input_price is None
    assert (request.temperature, request.max_tokens) == (0.3, 4)
    assert verdict.confidence == 1.0 and verdict.details["judge_model"] == "fake/judge"


def test_custom_prompt() -> None:
    _, judge = judge_run("yes", build(prompt="Answer: {answer}. Right?"))
    assert judge.calls[0].messages[-1]["content"] == "Answer: Paris. Right?"


def test_judge_failure_gives_zero_confidence_with_the_error() -> None:
    verdict, _ = judge_run(FakeReply(error="server"), build())
    assert verdict.confidence == 0.0
    assert "judge failed" in verdict.reason and "server error" in verdict.reason


def test_a_later_judge_failure_keeps_the_usage_already_spent() -> None:
    script = [FakeReply("yes", prompt_tokens=10, completion_tokens=1, times=1), FakeReply(error="auth")]
    verdict, _ = judge_run(script, SelfVerifyVerifier(samples=2))
    assert verdict.confidence == 0.0 and "authentication failed" in verdict.reason
    assert verdict.usage.prompt_tokens == 10


def test_no_answer_is_not_judged() -> None:
    verdict, judge = judge_run("yes", build(), answer=None)
    assert verdict.confidence == 0.0 and len(judge.calls) == 0
