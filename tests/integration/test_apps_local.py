"""Apps on the real local models: JSON-schema answers and tool calls through a cascade (llama.cpp grammars)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from cascade import Cascade, CascadeConfig
from cascade.types import CascadeResult, TextDelta, TierStart
from tests.unit.io.test_structured import WEATHER

pytestmark = pytest.mark.integration

CITY = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
    "required": ["city", "country"],
    "additionalProperties": False,
}


def two_tiers(small: str, large: str, **overrides: Any) -> Cascade:
    """SmolLM2 with too few tokens for a JSON object (so it must escalate), then Qwen2.5-0.5B."""
    tier = {"logprobs": True, "seed": 0, "stop": ["\n"], "prompt": {"system": "Answer with only the final answer."}}
    config = {
        "tiers": [
            {**tier, "name": "small", "model": small, "max_tokens": 6},
            {**tier, "name": "large", "model": large, "max_tokens": 48},
        ],
        "router": {"type": "threshold", "threshold": 0.5},
        "retry": {"timeout_s": 600},
        **overrides,
    }
    return Cascade(CascadeConfig.from_dict(config))


def test_a_json_schema_request_gets_valid_json_from_a_local_cascade(smollm2: str, qwen05: str) -> None:
    cascade = two_tiers(smollm2, qwen05)
    result = cascade.run(
        [{"role": "system", "content": "You know world geography."}, {"role": "user", "content": "Capital of France?"}],
        response_format={"type": "json_schema", "json_schema": {"name": "city", "schema": CITY}},
    )
    assert result.error is None and result.answer is not None
    answer = json.loads(result.answer)
    assert set(answer) == {"city", "country"} and answer["city"] == "Paris"
    small = result.attempts[0]
    assert small.invalid is not None and small.decision == "escalate"  # 6 tokens cannot hold the object
    assert result.final_tier == "large" and result.attempts[-1].completion_tokens > 6


def test_a_required_tool_call_comes_back_valid_from_each_local_model(smollm2: str, qwen05: str) -> None:
    for model in (smollm2, qwen05):  # SmolLM2's template knows no tools; Qwen2.5's does
        tiers = [{"name": "only", "model": model, "max_tokens": 32}]
        cascade = Cascade(CascadeConfig.from_dict({"tiers": tiers, "retry": {"timeout_s": 600}}))
        result = cascade.run("What is the weather in Paris right now?", tools=[WEATHER], tool_choice="required")
        assert result.error is None and result.tool_calls, [a.reason for a in result.attempts]
        (call,) = result.tool_calls
        assert call["function"]["name"] == "get_weather"
        assert isinstance(json.loads(call["function"]["arguments"])["city"], str)


def test_the_last_tiers_first_tokens_arrive_before_its_last_is_generated(smollm2: str, qwen05: str) -> None:
    """A first tier that never gives an answer escalates; the last one's text streams as written."""
    never = {"format": "regex", "pattern": "(ZZZ-never)"}
    config = {
        "tiers": [
            {"name": "small", "model": smollm2, "max_tokens": 4, "answer": never, "seed": 0},
            {"name": "large", "model": qwen05, "max_tokens": 24, "answer": {"format": "text"}, "seed": 0},
        ],
        "retry": {"timeout_s": 600},  # a loaded CI machine: slow is fine, the test is about order
    }
    cascade = Cascade(CascadeConfig.from_dict(config))

    async def timed() -> list[tuple[float, Any]]:
        started = time.perf_counter()
        return [(time.perf_counter() - started, e) async for e in cascade.astream("Describe Paris.", tokens=True)]

    events = asyncio.run(timed())
    starts = [e for _, e in events if isinstance(e, TierStart)]
    assert [(s.tier, s.live) for s in starts] == [("small", False), ("large", True)]
    deltas = [(t, e) for t, e in events if isinstance(e, TextDelta)]
    ended, result = events[-1]
    assert isinstance(result, CascadeResult) and result.final_tier == "large"
    assert len(deltas) >= 8 and all(d.live for _, d in deltas)
    assert "".join(d.text for _, d in deltas).strip() == result.answer
    first, last = deltas[0][0], deltas[-1][0]
    assert last - first > 0.25 * (ended - first), (first, last, ended)  # spread over the generation, not a burst
