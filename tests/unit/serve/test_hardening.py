"""Issue 22's probes of `cascade serve` (the second round): hostile request fields get a 4xx in
OpenAI's error shape before any model is paid, and slow validation cannot hold up the server."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from cascade.io import structured
from tests.unit.serve.test_app import ask, client, demo

TOOL = {"type": "function", "function": {"name": "x", "parameters": {"type": "object"}}}


@pytest.mark.parametrize("choice", [{"function": "x"}, {"function": None}, {"function": ["x"]}, 5, ["x"], "x"])
async def test_a_malformed_tool_choice_is_400_naming_it(choice: Any) -> None:
    """Issue 22.9: `{"function": "x"}` and `{"function": null}` were 500s (AttributeError)."""
    cascade, fake = demo()
    async with client(cascade) as http:
        response = await http.post("/v1/chat/completions", json=ask(tools=[TOOL], tool_choice=choice))
    error = response.json()["error"]
    assert response.status_code == 400 and error["type"] == "invalid_request_error"
    assert error["param"] == "tool_choice" and "tool_choice" in error["message"]
    assert not fake.calls


def many_tools(n: int) -> list[dict[str, Any]]:
    return [{"type": "function", "function": {"name": f"t{i}", "parameters": {"type": "object"}}} for i in range(n)]


async def test_more_tools_than_openai_allows_are_400_before_any_schema_is_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 22.3: 10,000 tools held the event loop 4.8 s while each schema was checked."""
    checked: list[Any] = []
    monkeypatch.setattr(structured, "checked_schema", lambda schema, where: checked.append(schema) or schema)
    cascade, fake = demo()
    async with client(cascade, max_query_tokens=10**6) as http:
        response = await http.post("/v1/chat/completions", json=ask(tools=many_tools(10_000)))
    error = response.json()["error"]
    assert response.status_code == 400 and error["param"] == "tools" and "at most 128" in error["message"]
    assert not checked and not fake.calls


async def test_a_requests_schemas_are_checked_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Checking 128 tools' schemas takes a while; the loop keeps serving /health meanwhile."""
    threads: list[int] = []
    real = structured.checked_schema
    monkeypatch.setattr(
        structured, "checked_schema", lambda schema, where: threads.append(threading.get_ident()) or real(schema, where)
    )
    cascade, _ = demo()
    async with client(cascade, max_query_tokens=10**6) as http:
        response = await http.post("/v1/chat/completions", json=ask(tools=many_tools(128), tool_choice="none"))
    assert response.status_code == 200 and len(threads) == 128
    assert threading.get_ident() not in threads


async def test_the_prompt_limit_counts_the_response_format() -> None:
    """Issue 22.5: a 940 KB enum schema was answered (469,526 prompt tokens past an 8,192 limit)."""
    schema = {"type": "string", "enum": [f"value-{i:06d}" for i in range(60_000)]}
    fmt = {"type": "json_schema", "json_schema": {"name": "e", "schema": schema}}
    cascade, fake = demo()
    async with client(cascade, max_body_bytes=2_000_000) as http:
        response = await http.post("/v1/chat/completions", json=ask(response_format=fmt))
        assert not fake.calls
        tools = await http.post("/v1/chat/completions", json=ask(tools=many_tools(100), tool_choice="none"))
    error = response.json()["error"]
    assert response.status_code == 400 and error["code"] == "context_length_exceeded"
    assert "messages, tools and response format" in error["message"]
    assert tools.status_code == 200  # 100 small tools are about 2,000 tokens
