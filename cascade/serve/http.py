"""The HTTP layer around the app: bounded request heads and an access log that keeps no secrets.

A request head (request line plus headers) is limited to `max_header_bytes` and must arrive within
the header timeout (408 after it, `cascade.serve.bounded_http`). uvicorn's h11
parser has such a limit, but its default parser, httptools, buffers a header until it ends, so a
client sending a 10 MB `Authorization` header has it read into memory and handed to the app.
`cascade.serve.bounded_http` counts a head's bytes as they arrive and answers 431 once it passes
the limit; `HeadLimit` checks the head again inside the app, for any other server.

uvicorn's access log prints each request's path with its query string. A client that puts its
API key there (`?api_key=sk-...`, as some SDKs do, or `?sk-...`, `?api_key%3Dsk-...`) or in the
path (`/v1/models/sk-...`) would have it written to the log, so `RedactQuery` logs a path only as
far as it is one of this server's `ROUTES`, anything past or instead of one as `***`, and a query
string as `?***`: no endpoint here reads a query parameter.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

MAX_HEADER_BYTES = 32 * 1024
"""Default limit on a request's head: nginx's default large buffers hold 4 x 8 KB."""
LINGER_S = 1.0
"""After a 431, input is read and dropped this long before closing, so the client gets the answer
(closing with unread input makes the kernel reset the connection, which can discard it)."""

BOUNDED_HTTPTOOLS = "cascade.serve.bounded_http:BoundedHttpToolsProtocol"
BOUNDED_H11 = "cascade.serve.bounded_http:BoundedH11Protocol"
"""uvicorn's protocols with the head limits (size and time), by the names uvicorn imports them from."""
HEADER_TIMEOUT_S = 10.0
HEADER_TIMEOUT_ENV = "CASCADE_HEADER_TIMEOUT_S"
"""Seconds a request head may take (`cascade.serve.bounded_http`); worker processes inherit it."""

ROUTES = ("/v1/chat/completions", "/v1/models", "/v1/feedback", "/health", "/metrics")
"""Every path the app serves (`cascade.serve.app.create_app`); the access log shows no other."""
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def error_body(status: int, message: str, code: str) -> bytes:
    """OpenAI's error shape, for answers sent below the app (where FastAPI is not involved)."""
    kind = "invalid_request_error" if status < 500 else "server_error"
    return json.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}}).encode()


def head_too_large(limit: int) -> bytes:
    return error_body(431, f"request headers larger than {limit} bytes", "request_header_fields_too_large")


def redact_path(path: str) -> str:
    """`/v1/models?api_key=sk-1` -> `/v1/models?***`, `/v1/models/sk-1` -> `/v1/models/***`,
    `/sk-1` -> `/***`: a route of this server is kept, nothing else."""
    base, mark, _query = path.partition("?")
    return _route_part(base) + ("?***" if mark else "")


def _route_part(base: str) -> str:
    if base in ROUTES or base in ("", "/"):
        return base
    under = [route for route in ROUTES if base.startswith(route + "/")]
    return max(under, key=len) + "/***" if under else "/***"


class RedactQuery(logging.Filter):
    """Rewrites uvicorn access records (client, method, path, version, status) before formatting."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            record.args = (args[0], args[1], redact_path(args[2]), args[3], args[4])
        return True


class HeadLimit:
    """ASGI middleware: 431 for a request whose headers total more than `limit` bytes."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _head_size(scope) > self.limit:
            body = head_too_large(self.limit)
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            await send({"type": "http.response.start", "status": 431, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)


def _head_size(scope: Scope) -> int:
    headers = scope.get("headers") or []
    return (
        len(scope.get("raw_path") or b"")
        + len(scope.get("query_string") or b"")
        + sum(len(name) + len(value) + 4 for name, value in headers)
    )


def log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging config with `RedactQuery` on the access log."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["redact_query"] = {"()": RedactQuery}
    config["loggers"]["uvicorn.access"]["filters"] = ["redact_query"]
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        config["loggers"][name]["level"] = level.upper()
    return config


def uvicorn_options(*, max_header_bytes: int = MAX_HEADER_BYTES, log_level: str = "info") -> dict[str, Any]:
    """Keyword arguments for `uvicorn.run`/`uvicorn.Config` that apply the head limit and redaction."""
    options: dict[str, Any] = {"log_level": log_level, "log_config": log_config(log_level)}
    # uvicorn imports the protocol by name (in each worker too); without httptools, h11 keeps the size limit itself.
    options["http"] = BOUNDED_HTTPTOOLS if importlib.util.find_spec("httptools") is not None else BOUNDED_H11
    options["h11_max_incomplete_event_size"] = max_header_bytes  # both protocols read the limit here
    return options
