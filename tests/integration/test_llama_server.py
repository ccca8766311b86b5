"""The HTTP path: litellm's `openai/` provider against llama-cpp-python's server on loopback."""

from __future__ import annotations

import json
import urllib.request

import litellm
import pytest

pytestmark = pytest.mark.integration


def test_server_lists_the_model(llama_server: str, llama_server_model: str) -> None:
    with urllib.request.urlopen(f"{llama_server}/models", timeout=10) as response:
        ids = [item["id"] for item in json.load(response)["data"]]
    assert llama_server_model.removeprefix("openai/") in ids


def test_litellm_openai_provider_reaches_the_server(llama_server: str, llama_server_model: str) -> None:
    response = litellm.completion(
        model=llama_server_model,
        api_base=llama_server,
        api_key="sk-local-test",
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        max_tokens=8,
        temperature=0,
        num_retries=0,
    )
    assert response.choices[0].message.content.strip()
    assert response.usage.prompt_tokens > 0 and 0 < response.usage.completion_tokens <= 8
