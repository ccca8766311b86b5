"""A pytest plugin that points llama.cpp's server tests at `cascade serve` (loaded by
benchmarks/conformance.py as `-p conformance_shim`; nothing of llama.cpp's is changed on disk).

The tests talk to llama-server on 127.0.0.1:$PORT through `utils.ServerProcess` and the `openai`
client, and with DEBUG_EXTERNAL=1 they start no server of their own. The shim changes three
things, and nothing a test asserts:

- base URL: llama-server also answers OpenAI's routes without `/v1` (`/chat/completions`,
  `/models`); cascade serves them under `/v1`, so those paths get the prefix, and `openai.OpenAI`
  clients get cascade's base URL;
- key: cascade serve always wants one; a request without `Authorization` gets the run's key, and
  `openai.OpenAI` clients are given it;
- model: the test's model name (a llama-server alias, or "gpt-3.5-turbo") becomes the served
  cascade's name, and so does `server.model_alias` for the tests that compare with it.

Excluded tests (CONFORMANCE_EXCLUDED, a JSON file of [fnmatch pattern of a test id, reason]) are
deselected with their reason; every test's outcome goes to CONFORMANCE_REPORT (JSON lines).
"""

from __future__ import annotations

import fnmatch
import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

BASE = os.environ.get("CONFORMANCE_BASE", "http://127.0.0.1:8080")
KEY = os.environ.get("CONFORMANCE_KEY", "")
MODEL = os.environ.get("CONFORMANCE_MODEL", "")
OPENAI_ROUTES = ("/chat/completions", "/completions", "/models", "/embeddings", "/responses")
SERVER_SIDE = {"hf_repo", "template_override", "template_name"}
"""Parameters that only choose llama-server's model or chat template: an external server ignores them."""


def _path(path: str) -> str:
    return f"/v1{path}" if path.startswith(OPENAI_ROUTES) else path


def _with_key(headers: dict[str, Any] | None) -> dict[str, Any]:
    headers = {k: v for k, v in (headers or {}).items() if v is not None}
    if not any(k.lower() in ("authorization", "x-api-key") for k in headers):
        headers["Authorization"] = f"Bearer {KEY}"
    return headers


def _with_model(data: Any) -> Any:
    return {**data, "model": MODEL} if isinstance(data, dict) else data


def _patch_llama_utils() -> None:
    import utils  # llama.cpp's tests/utils.py, on sys.path through their conftest

    server = utils.ServerProcess
    make_request, make_stream_request, start = server.make_request, server.make_stream_request, server.start

    def make_url(self: Any, path: str, host: str | None = None) -> str:
        return f"{BASE}{_path(path)}"

    def request(self: Any, method: str, path: str, data: Any = None, headers: Any = None, **kw: Any) -> Any:
        return make_request(self, method, path, _with_model(data), _with_key(headers), **kw)

    def stream(self: Any, method: str, path: str, data: Any = None, headers: Any = None, **kw: Any) -> Iterator[Any]:
        return make_stream_request(self, method, path, _with_model(data), _with_key(headers), **kw)

    def begin(self: Any, *args: Any, **kwargs: Any) -> None:
        self.model_alias = MODEL
        start(self, *args, **kwargs)

    server.make_url, server.make_request, server.make_stream_request, server.start = make_url, request, stream, begin


def _patch_openai() -> None:
    import openai
    from openai.resources.chat.completions import Completions

    init, create = openai.OpenAI.__init__, Completions.create

    def client(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **{**kwargs, "base_url": f"{BASE}/v1", "api_key": KEY})

    def completions(self: Any, *args: Any, **kwargs: Any) -> Any:
        return create(self, *args, **{**kwargs, "model": MODEL})

    openai.OpenAI.__init__ = client  # type: ignore[method-assign]
    Completions.create = completions  # type: ignore[method-assign]


def pytest_sessionstart(session: pytest.Session) -> None:
    _patch_llama_utils()
    _patch_openai()


def _excluded() -> list[tuple[str, str]]:
    path = os.environ.get("CONFORMANCE_EXCLUDED")
    return [tuple(pair) for pair in json.loads(open(path).read())] if path else []  # type: ignore[misc]


def _request_key(item: pytest.Item) -> tuple[str, str] | None:
    """A parametrized test's identity without the parameters only llama-server reads."""
    spec = getattr(item, "callspec", None)
    if spec is None or not SERVER_SIDE & set(spec.params):
        return None
    kept = {k: repr(v) for k, v in sorted(spec.params.items()) if k not in SERVER_SIDE}
    return item.nodeid.split("[")[0], json.dumps(kept)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    rules, first, keep, dropped = _excluded(), {}, [], []
    for item in items:
        reason = next((why for pattern, why in rules if fnmatch.fnmatchcase(item.nodeid, pattern)), None)
        key = _request_key(item)
        if reason is None and key is not None:
            if key in first:
                reason = f"the same request as {first[key]}: its other parameters pick llama-server's model or template"
            else:
                first[key] = item.nodeid
        if reason is None:
            keep.append(item)
        else:
            dropped.append(item)
            _report({"test": item.nodeid, "outcome": "excluded", "reason": reason})
    items[:] = keep
    config.hook.pytest_deselected(items=dropped)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """One line per test: its call's outcome, or its setup's when that did not pass (a skip, an error)."""
    if report.when == "call" or (report.when == "setup" and not report.passed):
        crash = getattr(report.longrepr, "reprcrash", None)
        message = str(crash.message) if crash is not None else str(report.longrepr or "")
        outcome = "failed" if report.failed else report.outcome
        _report({"test": report.nodeid, "outcome": outcome, "message": message[:500] if outcome != "passed" else ""})


def _report(row: dict[str, Any]) -> None:
    path = os.environ.get("CONFORMANCE_REPORT")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(row) + "\n")
