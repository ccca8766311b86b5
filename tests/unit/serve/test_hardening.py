"""Issue 22's probes of `cascade serve` (the second round): hostile request fields get a 4xx in
OpenAI's error shape before any model is paid, and slow validation cannot hold up the server."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from cascade import FakeCompleter
from cascade.io import structured
from cascade.serve import ServeSettings, create_app
from cascade.serve.background import serve_in_thread
from cascade.serve.http import BOUNDED_H11, BOUNDED_HTTPTOOLS, HEADER_TIMEOUT_ENV
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


def read_all(sock: socket.socket) -> bytes:
    reply = b""
    with contextlib.suppress(OSError):
        while data := sock.recv(65536):
            reply += data
    return reply


@pytest.fixture(params=[BOUNDED_HTTPTOOLS, BOUNDED_H11], ids=["httptools", "h11"])
def slow_server(monkeypatch: pytest.MonkeyPatch, request: Any) -> Iterator[tuple[str, int, FakeCompleter]]:
    """A server whose request heads must arrive within 0.5 s and bodies within 0.5 s after."""
    monkeypatch.setenv(HEADER_TIMEOUT_ENV, "0.5")
    cascade, fake = demo()
    app = create_app({"demo": cascade}, ServeSettings(body_timeout_s=0.5))
    with serve_in_thread(app, http=request.param) as url:
        yield url, int(url.rsplit(":", 1)[1]), fake


def test_a_head_sent_slowly_or_not_at_all_is_408_and_closed(slow_server: tuple[str, int, FakeCompleter]) -> None:
    """Issue 22.14: heads sent at 1 byte/s were held open indefinitely (1,000 half-sent heads held)."""
    url, port, fake = slow_server
    socks = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(40)]
    for sock in socks[:20]:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthori")  # and nothing more
    assert httpx.get(f"{url}/health", timeout=5).status_code == 200  # served meanwhile
    replies = [read_all(sock) for sock in socks]  # each ends when the server closes the connection
    for sock in socks:
        sock.close()
    assert all(reply.startswith(b"HTTP/1.1 408 ") and b'"request_timeout"' in reply for reply in replies)
    assert not fake.calls


def test_a_body_sent_slowly_is_408_and_closed(slow_server: tuple[str, int, FakeCompleter]) -> None:
    _, port, fake = slow_server
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{")
        reply = read_all(sock)
    assert reply.startswith(b"HTTP/1.1 408 ") and b"request body not received within 0.5 seconds" in reply
    assert not fake.calls


def test_a_client_hanging_up_mid_body_is_a_499_not_a_server_error(
    slow_server: tuple[str, int, FakeCompleter], caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 22.14: a hang-up mid-body was logged as a 500 'run failed'."""
    url, port, _ = slow_server
    for path in ("/v1/chat/completions", "/v1/feedback"):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(f"POST {path} HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{{".encode())
            time.sleep(0.1)
    time.sleep(0.2)
    metrics = httpx.get(f"{url}/metrics", timeout=5).text
    assert 'cascade_requests_total{model="unknown",status="499"} 1.0' in metrics
    assert 'status="500"' not in metrics
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
