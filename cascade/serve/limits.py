"""Admission control and request limits: refuse early and clearly rather than queue forever.

At most `max_concurrency` runs proceed at once; up to `max_queue` more wait for a slot, and any
request beyond that gets a 429 with `Retry-After` at once, so a burst costs the server nothing
but the refusal. Bodies larger than `max_body_bytes` get a 413 before they are parsed, even when
sent chunked without a Content-Length, and bodies still incomplete after `body_timeout_s` a 408
(a client sending a byte a second holds no connection for long).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.requests import ClientDisconnect, Request

from cascade.serve.api_errors import ApiError
from cascade.serve.disconnect import ClientDisconnected

BODY_TIMEOUT_S = 30.0
"""How long a request body may take to arrive: a megabyte at 35 KB/s."""


class Admission:
    """A semaphore for running requests plus a bounded count of those waiting for it."""

    def __init__(self, max_concurrency: int, max_queue: int, *, retry_after_s: int = 1):
        if max_concurrency < 1 or max_queue < 0:
            raise ValueError("max_concurrency must be >= 1 and max_queue >= 0")
        self.max_concurrency = max_concurrency
        self.max_queue = max_queue
        self.retry_after_s = retry_after_s
        self.running = 0
        self.waiting = 0
        self._slots = asyncio.Semaphore(max_concurrency)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        if self._slots.locked() and self.waiting >= self.max_queue:
            raise ApiError(
                429,
                f"server busy: {self.running} requests running and {self.waiting} queued; retry later",
                code="queue_full",
                headers={"Retry-After": str(self.retry_after_s)},
            )
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        self.running += 1
        try:
            yield
        finally:
            self.running -= 1
            self._slots.release()


async def read_body(request: Request, limit: int, timeout_s: float = BODY_TIMEOUT_S) -> bytes:
    """The request body; a 413 as soon as it is known to exceed `limit` bytes, a 408 (closing the
    connection) when it has not all arrived within `timeout_s`, and ClientDisconnected when the
    client hangs up before its end."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks, size = [], 0
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise _too_large(limit)
                chunks.append(chunk)
    except TimeoutError:
        message = f"request body not received within {timeout_s:g} seconds"
        raise ApiError(408, message, code="request_timeout", headers={"connection": "close"}) from None
    except ClientDisconnect:
        raise ClientDisconnected() from None
    return b"".join(chunks)


def _too_large(limit: int) -> ApiError:
    return ApiError(413, f"request body larger than {limit} bytes", code="request_too_large")


def approx_tokens(text: str) -> int:
    """About four characters a token: a tokenizer-free bound that errs on no model's side."""
    return math.ceil(len(text) / 4)


def check_tokens(prompt: str, requested: int | None, *, max_query_tokens: int, max_tokens: int) -> None:
    """400 for a prompt (messages, tools, response format) longer than the server accepts or a
    `max_tokens` above its limit."""
    if approx_tokens(prompt) > max_query_tokens:
        raise ApiError(
            400,
            f"prompt too long: about {approx_tokens(prompt)} tokens of messages, tools and response format, "
            f"the limit is {max_query_tokens}",
            code="context_length_exceeded",
            param="messages",
        )
    if requested is not None and requested > max_tokens:
        raise ApiError(400, f"max_tokens {requested} exceeds this server's limit of {max_tokens}", param="max_tokens")
