"""`cascade serve` on the default local cascade, called with the `openai` client over loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import openai
import pytest

from cascade.serve import ServeSettings, create_app
from cascade.serve.background import serve_in_thread
from cascade.serve.worker import load_cascades

pytestmark = pytest.mark.integration

LOCAL = Path(__file__).resolve().parents[2] / "configs" / "local.yaml"
MODELS = ("smollm2-135m", "qwen2.5-0.5b", "qwen2.5-1.5b")
TIERS = (*MODELS, "qwen2.5-1.5b-think")


@pytest.fixture(scope="module")
def client(local_provider: object, local_model_path: Callable[[str], Path]) -> Iterator[openai.OpenAI]:
    for name in MODELS:
        local_model_path(name)  # skips with the pip command when weights are missing
    app = create_app(load_cascades([LOCAL]), ServeSettings(api_keys=("sk-local-test-000000",)))
    with serve_in_thread(app) as url:
        yield openai.OpenAI(base_url=f"{url}/v1", api_key="sk-local-test-000000", max_retries=0, timeout=600)


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
