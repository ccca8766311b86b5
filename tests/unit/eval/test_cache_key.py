"""The output cache's key covers every request field that can change a model's output, and keys of
requests made before a field existed are unchanged (a cache filled then still answers)."""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any

import pytest

from cascade.config.schema import EarlyExitConfig
from cascade.eval.live.cache import NOT_IN_KEY, request_key
from cascade.types import CompletionRequest

REQUEST = CompletionRequest(
    model="openai/gpt-4o-mini",
    messages=[{"role": "user", "content": "2+2?"}],
    max_tokens=16,
    stop=("\n",),
    seed=7,
    logprobs=True,
    api_base="http://x",
    stop_pattern="x",
    extra={"a": 1},
)
CHANGED: dict[str, Any] = {
    "model": "openai/gpt-4o",
    "messages": [{"role": "user", "content": "3+3?"}],
    "max_tokens": 17,
    "temperature": 0.7,
    "stop": (".",),
    "seed": 8,
    "logprobs": False,
    "api_base": "http://y",
    "stop_pattern": "y",
    "extra": {"a": 2},
    "response_format": {"type": "json_object"},
    "tools": ({"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}},),
    "tool_choice": "required",
    "top_logprobs": 5,
    "early_exit": EarlyExitConfig(),
}


def test_keys_made_before_the_newer_fields_are_unchanged() -> None:
    """Pinned to the keys the cache wrote before tools, response_format and tool_choice were keyed."""
    assert request_key(REQUEST) == "faac56a3dd331bfd005377f3cf8190333fd5e6f0dd511c28704e784af0402e22"
    with_signals = replace(REQUEST, top_logprobs=3, early_exit=EarlyExitConfig())
    assert request_key(with_signals) == "9a3ed30bd36b8b24578d7f9939969237f2f0d111134daa8ed3ea8cdb54819a62"


@pytest.mark.parametrize("name", [f.name for f in fields(CompletionRequest) if f.name not in NOT_IN_KEY])
def test_every_field_that_can_change_the_output_changes_the_key(name: str) -> None:
    """A field added to CompletionRequest fails here until it is given a changed value (keyed) or is
    declared in NOT_IN_KEY: a cached answer is never served for a different request."""
    assert name in CHANGED, f"CompletionRequest.{name}: add it to CHANGED, or to NOT_IN_KEY if it cannot matter"
    assert request_key(replace(REQUEST, **{name: CHANGED[name]})) != request_key(REQUEST)


@pytest.mark.parametrize("name", sorted(NOT_IN_KEY))
def test_what_cannot_change_the_output_leaves_the_key(name: str) -> None:
    values = {"api_key": "sk-other", "input_price": 1.0, "output_price": 2.0, "timeout_s": 3.0, "on_text": print}
    assert request_key(replace(REQUEST, **{name: values[name]})) == request_key(REQUEST)
