"""Issue 14's probes of `cascade serve`: bad arguments exit 2 naming the option; bad requests get a
4xx in OpenAI's error shape; heads are bounded; keys in a query string never reach the log."""

from __future__ import annotations

import json
import logging
import select
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cascade.cli.main import main as cascade_main
from cascade.cli.serve import main as serve_main
from cascade.errors import UserError
from cascade.serve import ServeSettings, create_app
from cascade.serve.background import serve_in_thread
from cascade.serve.http import ROUTES, RedactQuery, redact_path
from cascade.store import Store, open_store
from tests.unit.serve.test_app import ask, client, demo

KEY = "sk-hostile-test-0123456789"


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--max-concurrency", "0", "0 is not at least 1"),
        ("--max-body-bytes", "-1", "-1 is not at least 1"),
        ("--key-max-tokens", "0", "0 is not at least 1"),
        ("--cooldown-s", "0", "0 is not a finite number > 0"),
        ("--cooldown-s", "nan", "nan is not a finite number > 0"),
        ("--key-max-cost-usd", "inf", "inf is not a finite number > 0"),
        ("--port", "99999", "99999 is not in 1..65535"),
        ("--port", "http", "'http' is not a whole number"),
        ("--max-queue", "-3", "-3 is not at least 0"),
        ("--max-header-bytes", "10", "10 is not at least 1024"),
    ],
)
def test_out_of_range_arguments_exit_2_naming_the_option(
    option: str, value: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    for run in (lambda: cascade_main(["serve", option, value]), lambda: serve_main([option, value])):
        with pytest.raises(SystemExit) as exit_:
            run()
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert f"argument {option}: {message}" in err and "Traceback" not in err


def test_settings_out_of_range_are_a_user_error() -> None:
    with pytest.raises(UserError, match="max_concurrency: Input should be greater than or equal to 1"):
        ServeSettings.checked(max_concurrency=0)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(str(tmp_path / "store.sqlite"))
    yield opened
    opened.close()


@pytest.mark.parametrize("kind", ["correction", "label"])
async def test_a_blank_correction_is_400_not_404(store: Store, kind: str) -> None:
    cascade, _ = demo()
    app = create_app({"demo": cascade}, ServeSettings(), store=store)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        run_id = (await http.post("/v1/chat/completions", json=ask())).headers["x-cascade-run-id"]
        blank = await http.post("/v1/feedback", json={"run_id": run_id, "kind": kind, "value": " \n\t"})
        unknown = await http.post("/v1/feedback", json={"run_id": "nope", "kind": kind, "value": "x"})
    assert blank.status_code == 400 and "needs a value" in blank.json()["error"]["message"]
    assert blank.json()["error"]["type"] == "invalid_request_error"
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "run_not_found"


async def test_a_query_with_a_lone_surrogate_is_400_before_any_model_call() -> None:
    cascade, fake = demo()
    raw = json.dumps(ask("2+2\udcff?"))  # valid JSON: the escape "\udcff" decodes to a lone surrogate
    async with client(cascade) as http:
        response = await http.post("/v1/chat/completions", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 400 and len(fake.calls) == 0
    assert "lone leading surrogate" in response.json()["error"]["message"]


async def test_a_query_the_engine_refuses_is_400_not_500(monkeypatch: pytest.MonkeyPatch) -> None:
    cascade, _ = demo()
    with pytest.raises(UserError, match="not valid UTF-8 text: a lone surrogate U\\+D800 at character 1"):
        await cascade.arun("a\ud800")

    async def refuse(*_args: Any, **_kwargs: Any) -> AsyncIterator[Any]:
        raise UserError("tag must be a non-empty string (or None)")
        yield  # an async generator, like Cascade.astream

    monkeypatch.setattr(cascade, "astream", refuse)
    async with client(cascade) as http:
        response = await http.post("/v1/chat/completions", json=ask())
    assert response.status_code == 400 and response.json()["error"]["message"].startswith("tag must be")


async def test_headers_over_the_limit_are_431_inside_the_app() -> None:
    cascade, fake = demo()
    async with client(cascade, max_header_bytes=4096) as http:
        response = await http.post("/v1/chat/completions", json=ask(), headers={"x-padding": "p" * 5000})
        ok = await http.post("/v1/chat/completions", json=ask(), headers={"x-padding": "p" * 3000})
    assert response.status_code == 431 and len(fake.calls) == 2  # only the second request ran (2 tiers)
    assert response.json()["error"]["code"] == "request_header_fields_too_large"
    assert ok.status_code == 200


def _send_head(port: int, size: int, outcome: dict[str, Any]) -> None:
    """Send a request whose Authorization header is `size` bytes, stopping once the server answers;
    `sent` is how much had gone out when the answer arrived."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ")
        chunk, sent = b"k" * 16384, 0
        try:
            while sent < size and not select.select([sock], [], [], 0.002)[0]:
                sock.sendall(chunk)
                sent += len(chunk)
        except OSError:
            pass
        outcome["sent"] = sent
        reply = b""
        try:
            while data := sock.recv(65536):
                reply += data
        except OSError:
            pass
        outcome["reply"] = reply


def test_a_10_mb_authorization_header_is_refused_early_by_the_server() -> None:
    cascade, fake = demo()
    app = create_app({"demo": cascade}, ServeSettings(api_keys=(KEY,)))
    outcome: dict[str, Any] = {}
    with serve_in_thread(app) as url:
        port = int(url.rsplit(":", 1)[1])
        started = time.perf_counter()
        sender = threading.Thread(target=_send_head, args=(port, 10_000_000, outcome))
        sender.start()
        sender.join(timeout=30)
        elapsed = time.perf_counter() - started
        after = httpx.get(f"{url}/health", timeout=5)
    assert outcome["reply"].startswith(b"HTTP/1.1 431 ")
    assert b'"code": "request_header_fields_too_large"' in outcome["reply"]
    assert elapsed < 10 and len(fake.calls) == 0 and after.status_code == 200
    assert outcome["sent"] < 1_000_000  # answered after a fraction of the header, not at its end


def test_query_string_values_never_reach_the_access_log() -> None:
    cascade, _ = demo()
    app = create_app({"demo": cascade}, ServeSettings(api_keys=(KEY,)))
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    handler = Collect()
    with serve_in_thread(app, log_level="info") as url:
        logging.getLogger("uvicorn.access").addHandler(handler)
        try:
            auth = {"authorization": f"Bearer {KEY}"}
            for path in [f"/v1/models?api_key={KEY}&user=ann", f"/v1/models?{KEY}", f"/v1/models?api_key%3D{KEY}"]:
                httpx.get(f"{url}{path}", headers=auth)
            for path in [f"/v1/models?api_key;{KEY}", f"/v1/models/{KEY}", f"/{KEY}", f"/v1/{KEY}/x"]:
                httpx.get(f"{url}{path}", headers=auth)
        finally:
            logging.getLogger("uvicorn.access").removeHandler(handler)
    logged = [line for line in lines if "GET /" in line]
    assert len(logged) == 7 and sum("GET /v1/models?*** " in line for line in logged) == 4, lines
    assert sum("GET /v1/models/*** " in line for line in logged) == 1
    assert not any(KEY in line or "ann" in line or "abcdef" in line for line in lines)


def test_redaction_keeps_the_servers_routes_and_nothing_else() -> None:
    """Issue 22.10: `?K`, `?api_key%3DK`, `?api_key;K` and a key as a path segment were logged as sent."""
    assert redact_path("/v1/models") == "/v1/models" and redact_path("/") == "/"
    assert redact_path("/v1/x?key=sk-abcdefghijkl&flag") == "/***?***"
    assert redact_path("/v1/chat/completions/sk-abcdefghijklmnop/x") == "/v1/chat/completions/***"
    assert redact_path("/v1/modelsX") == "/***" and redact_path("/health?sk-1") == "/health?***"
    args = ("c", "GET", "/?t=1", "1.1", 200)
    record = logging.LogRecord("uvicorn.access", 20, "", 0, '%s - "%s %s HTTP/%s" %d', args, None)
    assert RedactQuery().filter(record) and record.getMessage() == 'c - "GET /?*** HTTP/1.1" 200'


def test_every_route_of_the_app_is_one_the_access_log_shows() -> None:
    """A path parameter (`/v1/models/{model_id}`) is logged as `***`, like anything past a route."""
    app = create_app({"demo": demo()[0]}, ServeSettings())
    paths = {str(getattr(route, "path", "")).split("/{")[0] for route in app.routes}
    assert paths == set(ROUTES)
