"""The real `openai` client against `cascade serve` on a loopback port (uvicorn in a thread)."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from cascade.serve import ServeSettings, create_app
from cascade.serve.background import serve_in_thread
from tests.unit.test_serve_app import QUESTION, demo

KEY = "sk-serve-test-0123456789"


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    cascade, _ = demo()
    app = create_app({"demo": cascade}, ServeSettings(api_keys=(KEY,)))
    with serve_in_thread(app) as url:
        yield f"{url}/v1"


def test_openai_client_lists_models_answers_and_streams(base_url: str) -> None:
    client = openai.OpenAI(base_url=base_url, api_key=KEY, max_retries=0, timeout=10)
    assert [m.id for m in client.models.list()] == ["demo"]

    raw = client.chat.completions.with_raw_response.create(
        model="demo", messages=[{"role": "user", "content": QUESTION}]
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "Paris" and completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.total_tokens == 25
    assert raw.headers["x-cascade-tier"] == "large" and completion.id == f"chatcmpl-{raw.headers['x-cascade-run-id']}"
    assert (completion.model_extra or {})["cascade"]["final_tier"] == "large"

    stream = client.chat.completions.create(
        model="demo",
        messages=[{"role": "user", "content": QUESTION}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Paris"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 25


def test_openai_client_raises_the_servers_errors(base_url: str) -> None:
    client = openai.OpenAI(base_url=base_url, api_key=KEY, max_retries=0, timeout=10)
    with pytest.raises(openai.BadRequestError, match="single-turn"):
        client.chat.completions.create(
            model="demo",
            messages=[{"role": "system", "content": "Be terse"}, {"role": "user", "content": QUESTION}],
        )
    with pytest.raises(openai.NotFoundError, match="unknown model"):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": QUESTION}])
    wrong = openai.OpenAI(base_url=base_url, api_key="sk-wrong-0000000000", max_retries=0, timeout=10)
    with pytest.raises(openai.AuthenticationError, match="invalid API key"):
        wrong.models.list()
