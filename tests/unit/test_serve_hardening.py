"""Issue 22's probes of `cascade serve` (the second round): hostile request fields get a 4xx in
OpenAI's error shape before any model is paid, and slow validation cannot hold up the server."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.test_serve_app import ask, client, demo

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
