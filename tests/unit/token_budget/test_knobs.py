"""The provider's reasoning knob a budget policy chooses reaches the wire: a real litellm call to a
recording HTTP server on loopback (OpenAI's and Anthropic's request shapes), no network."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from cascade import Cascade, CascadeConfig
from cascade.serve.background import serve_in_thread

OPENAI_REPLY = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 0,
    "model": "o3-mini",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "The answer is 42."}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 20, "completion_tokens": 6, "total_tokens": 26},
}
ANTHROPIC_REPLY = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-20250514",
    "content": [{"type": "text", "text": "The answer is 42."}],
    "stop_reason": "end_turn",
    "usage": {"input_tokens": 20, "output_tokens": 6},
}


class Recorder:
    """Answers like OpenAI (`/chat/completions`) or Anthropic (`/v1/messages`) and keeps every body."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.app = FastAPI()
        self.app.post("/{path:path}")(self.answer)

    async def answer(self, path: str, request: Request) -> JSONResponse:
        self.bodies.append(json.loads(await request.body()))
        return JSONResponse(ANTHROPIC_REPLY if path.endswith("messages") else OPENAI_REPLY)


@pytest.fixture(scope="module")
def recorder() -> Iterator[tuple[Recorder, str]]:
    server = Recorder()
    with serve_in_thread(server.app) as url:
        yield server, url


def one_tier(model: str, api_base: str, policy: dict[str, Any], max_tokens: int) -> Cascade:
    tier = {"name": "think", "model": model, "api_base": api_base, "api_key_env": "KNOB_TEST_KEY"}
    tier |= {"max_tokens": max_tokens, "budget_policy": policy, "answer": {"format": "final"}}
    return Cascade(CascadeConfig.from_dict({"tiers": [tier], "retry": {"attempts": 1}}))


@pytest.mark.parametrize(("tokens", "effort"), [(1000, "low"), (3000, "medium"), (8000, "high")])
def test_reasoning_effort_is_sent_to_an_openai_reasoning_model(
    recorder: tuple[Recorder, str], monkeypatch: pytest.MonkeyPatch, tokens: int, effort: str
) -> None:
    server, url = recorder
    monkeypatch.setenv("KNOB_TEST_KEY", "sk-test-knob-0000")
    cascade = one_tier("openai/o3-mini", f"{url}/v1", {"type": "fixed", "tokens": tokens}, 8000)
    result = cascade.run("What is 6 x 7?")
    body = server.bodies[-1]
    assert body["reasoning_effort"] == effort  # 1000/8000 ≤ 0.25 → low, 3000/8000 ≤ 0.5 → medium
    assert body.get("max_completion_tokens", body.get("max_tokens")) == tokens
    assert result.answer == "42" and result.attempts[0].budget is not None
    assert result.attempts[0].budget.knobs == {"reasoning_effort": effort}


def test_thinking_budget_is_sent_to_anthropic(recorder: tuple[Recorder, str], monkeypatch: pytest.MonkeyPatch) -> None:
    server, url = recorder
    monkeypatch.setenv("KNOB_TEST_KEY", "sk-ant-test-knob-0000")
    policy = {"type": "fixed", "tokens": 2048, "answer_tokens": 512}
    result = one_tier("anthropic/claude-sonnet-4-20250514", url, policy, 16000).run("What is 6 x 7?")
    body = server.bodies[-1]
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert body["max_tokens"] == 2048 + 512  # Anthropic counts thinking inside max_tokens
    assert body.get("temperature", 1) == 1  # the only temperature Anthropic allows with thinking
    assert result.answer == "42"


def test_a_budget_under_anthropics_minimum_leaves_thinking_off(
    recorder: tuple[Recorder, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, url = recorder
    monkeypatch.setenv("KNOB_TEST_KEY", "sk-ant-test-knob-0000")
    result = one_tier("anthropic/claude-sonnet-4-20250514", url, {"type": "fixed", "tokens": 300}, 16000).run("6 x 7?")
    assert "thinking" not in server.bodies[-1] and server.bodies[-1]["max_tokens"] == 300
    assert result.attempts[0].budget is not None and "under Anthropic's minimum" in result.attempts[0].budget.reason


def test_a_model_without_a_knob_gets_the_cap_and_the_sentence_only(
    recorder: tuple[Recorder, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, url = recorder
    monkeypatch.setenv("KNOB_TEST_KEY", "sk-test-knob-0000")
    policy = {"type": "fixed", "tokens": 120, "prompt": "Use at most {budget} tokens."}
    one_tier("openai/gpt-4o-mini", f"{url}/v1", policy, 400).run("What is 6 x 7?")
    body = server.bodies[-1]
    assert "reasoning_effort" not in body and "thinking" not in body and body["max_tokens"] == 120
    assert body["messages"][-1]["content"] == "What is 6 x 7?\n\nUse at most 120 tokens."
