"""OpenAI compatibility of `cascade serve` as real clients see it (openai, litellm, langchain-openai)
against a uvicorn server on loopback: what OpenAI's schema allows is accepted, what a request asks
for is honoured or refused with a 400, never silently ignored."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from cascade import Cascade
from cascade.serve import ServeSettings, create_app
from cascade.serve.background import serve_in_thread

KEY = "sk-compat-test-0123456789"
QUESTION = "What is the capital of France?"


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    app = create_app({"fake": Cascade.from_yaml("configs/fake.yaml")}, ServeSettings(api_keys=(KEY,)))
    with serve_in_thread(app) as url:
        yield f"{url}/v1"


@pytest.fixture
def client(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key=KEY, max_retries=0, timeout=10)


def test_a_model_is_retrieved_by_id_and_an_unknown_one_is_a_404(client: openai.OpenAI) -> None:
    assert client.models.retrieve("fake").id == "fake"
    with pytest.raises(openai.NotFoundError, match="unknown model 'gpt-4o'") as missing:
        client.models.retrieve("gpt-4o")
    assert missing.value.code == "model_not_found"


def test_explicit_nulls_mean_the_defaults(base_url: str) -> None:
    """What litellm and other clients send for the optional fields they do not set."""
    nulls = dict.fromkeys(
        ("n", "stream", "stream_options", "temperature", "top_p", "max_tokens", "max_completion_tokens", "stop",
         "logprobs", "top_logprobs", "tools", "tool_choice", "response_format", "user", "metadata", "seed",
         "functions", "function_call", "parallel_tool_calls", "presence_penalty", "frequency_penalty"),
    )  # fmt: skip
    body = {"model": "fake", "messages": [{"role": "user", "content": QUESTION, "name": None}], **nulls}
    headers = {"authorization": f"Bearer {KEY}"}
    answer = httpx.post(f"{base_url}/chat/completions", json=body, headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["content"] == "Paris"
    streamed = httpx.post(
        f"{base_url}/chat/completions",
        json={**body, "stream": True, "stream_options": {"include_usage": None}},
        headers=headers,
        timeout=10,
    )
    assert streamed.status_code == 200 and '"content":"Paris"' in streamed.text
