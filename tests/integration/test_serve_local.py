"""`cascade serve` on the default local cascade, called with the `openai` client over loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import openai
import pytest

from cascade.serve import ServeSettings, create_app
from cascade.serve.background import serve_in_thread
from cascade.serve.worker import load_cascades
from tests.integration.conftest import LOCAL_CALL_TIMEOUT_S

pytestmark = pytest.mark.integration

MODELS = ("smollm2-135m", "qwen2.5-0.5b", "qwen2.5-1.5b")
TIERS = (*MODELS, "qwen2.5-1.5b-think")


@pytest.fixture(scope="module")
def client(
    local_provider: object, local_model_path: Callable[[str], Path], patient_config: Callable[[str], Path]
) -> Iterator[openai.OpenAI]:
    for name in MODELS:
        local_model_path(name)  # skips with the pip command when weights are missing
    app = create_app(load_cascades([patient_config("local.yaml")]), ServeSettings(api_keys=("sk-local-test-000000",)))
    with serve_in_thread(app) as url:
        wait = len(TIERS) * LOCAL_CALL_TIMEOUT_S  # a request may go through every tier
        yield openai.OpenAI(base_url=f"{url}/v1", api_key="sk-local-test-000000", max_retries=0, timeout=wait)


def test_openai_client_gets_paris_from_the_local_cascade(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="local", messages=[{"role": "user", "content": "What is the capital of France?"}]
    )
    completion = raw.parse()
    assert "Paris" in (completion.choices[0].message.content or "")
    assert raw.headers["x-cascade-tier"] in TIERS
    assert (
        completion.usage is not None and completion.usage.prompt_tokens > 0 and completion.usage.completion_tokens > 0
    )


def test_streamed_answer_matches(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="local",
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert "Paris" in "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0


WORD_PROBLEM = "Tom has 3 boxes with 12 apples each. He gives away 5 apples. How many apples does he have left?"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def test_a_reasoned_answer_is_the_same_content_streamed_or_not(client: openai.OpenAI) -> None:
    """The reasoning tier's answer is its conclusion either way; streamed, its reasoning comes as
    reasoning_content (it was the whole reasoning as content before)."""
    messages = [{"role": "user", "content": WORD_PROBLEM}]
    plain = client.chat.completions.create(model="local", messages=messages)
    chunks = list(client.chat.completions.create(model="local", messages=messages, stream=True))
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == plain.choices[0].message.content and "\n" not in streamed
    final = (chunks[-1].model_extra or {})["cascade"]
    if final["final_tier"] == "qwen2.5-1.5b-think":  # the pre-router sends arithmetic there
        reasoning = "".join(
            (c.choices[0].delta.model_extra or {}).get("reasoning_content", "") for c in chunks if c.choices
        )
        assert len(reasoning) > len(streamed)


def test_a_tool_result_is_answered_from_not_from_the_worked_example(client: openai.OpenAI) -> None:
    """local.yaml's tiers show '12 + 30 -> 42' as a worked example; a follow-up turn with a tool's
    result was answered '42'. Examples stay out of turns that carry tools or tool results."""
    question = {"role": "user", "content": "What is the weather in Paris?"}
    call = {
        "id": "call_weather_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
    }
    turns = [
        question,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {
            "role": "tool",
            "tool_call_id": "call_weather_1",
            "content": '{"city": "Paris", "temp_c": 18, "sky": "sunny"}',
        },
    ]
    reply = client.chat.completions.create(model="local", messages=turns, tools=[WEATHER])
    content = reply.choices[0].message.content or ""
    assert reply.choices[0].message.tool_calls is None, reply.choices[0].message
    assert content.strip() != "42" and ("18" in content or "sunny" in content.lower()), content
