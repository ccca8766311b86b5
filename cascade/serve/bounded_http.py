"""uvicorn's HTTP protocols with limits on each request's head: its size and the time it may take.

Size: httptools hands a header to the protocol only once it has ended, so the limit is kept by
counting the bytes that arrive while a head is incomplete. The read in which a request begins is
not counted (it may end the previous request's body), so a head is refused at most one read
(asyncio reads up to 256 KiB) past the limit. The limit is uvicorn's
`h11_max_incomplete_event_size`, the same setting the h11 protocol obeys itself.

Time: uvicorn waits for a head as long as the client likes (its keep-alive timeout only runs
between requests), so a client sending its head a byte a second, or nothing at all, holds a
connection forever, and a thousand of them hold a thousand. `HeadDeadline` answers 408 and closes
a connection whose head has not arrived `head_timeout_s` after it began (the connection opened, or
the next request's first byte came). The deadline comes from `CASCADE_HEADER_TIMEOUT_S` (`cascade
serve --header-timeout-s`), which `--workers N` processes inherit; these classes are importable by
name for the same reason (uvicorn unpickles its config in each worker).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from cascade.serve.http import (
    HEADER_TIMEOUT_ENV,
    HEADER_TIMEOUT_S,
    LINGER_S,
    MAX_HEADER_BYTES,
    error_body,
    head_too_large,
)


def header_timeout_s() -> float:
    raw = os.environ.get(HEADER_TIMEOUT_ENV)
    return float(raw) if raw else HEADER_TIMEOUT_S


class HeadDeadline:
    """Mixin for a uvicorn protocol: 408 and close when a request head takes longer than the deadline."""

    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    logger: Any
    client: Any

    def _init_deadline(self) -> None:
        self.head_timeout_s = header_timeout_s()
        self._head_timer: asyncio.TimerHandle | None = None
        self._answered = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]  # the protocol this is mixed into
        self._start_head_clock()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_clock()
        super().connection_lost(exc)  # type: ignore[misc]  # the protocol this is mixed into

    def _start_head_clock(self) -> None:
        if self._head_timer is None and not self._answered:
            self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_too_slow)

    def _stop_head_clock(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        self.logger.warning("request head from %s not received within %g s: 408", self.client, self.head_timeout_s)
        message = f"request headers not received within {self.head_timeout_s:g} seconds"
        self._answer_and_close("408 Request Timeout", error_body(408, message, "request_timeout"))

    def _answer_and_close(self, status: str, body: bytes) -> None:
        """Write a whole response, then close after lingering (closing with unread input makes the
        kernel reset the connection, which can discard the answer)."""
        self._answered = True
        self._stop_head_clock()
        head = (
            f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
        )
        self.transport.write(head.encode() + body)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_S, self.transport.close)


class BoundedHttpToolsProtocol(HeadDeadline, HttpToolsProtocol):
    """httptools: 431 once a request's head passes the size limit, 408 once it passes the deadline."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._init_deadline()
        self.max_header_bytes = int(self.config.h11_max_incomplete_event_size or MAX_HEADER_BYTES)
        self._head_bytes = 0
        self._in_head = True
        self._began = False

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes, self._in_head, self._began = 0, True, True
        self._start_head_clock()

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._stop_head_clock()
        super().on_headers_complete()

    def data_received(self, data: bytes) -> None:
        if self._answered:
            return  # lingering: input is dropped until the connection closes
        self._began = False
        super().data_received(data)
        if self._in_head and not self._began and self.parser is not None:
            self._head_bytes += len(data)
            if self._head_bytes > self.max_header_bytes:
                self.logger.warning("request head over %d bytes from %s: 431", self.max_header_bytes, self.client)
                self._answer_and_close("431 Request Header Fields Too Large", head_too_large(self.max_header_bytes))


class BoundedH11Protocol(HeadDeadline, H11Protocol):
    """h11 (when httptools is not installed): h11 keeps the size limit itself; this adds the deadline."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._init_deadline()

    def data_received(self, data: bytes) -> None:
        if self._answered:
            return
        super().data_received(data)
        if self.conn.their_state is h11.IDLE:  # part of a head, or nothing yet: its clock runs
            self._start_head_clock()
        else:
            self._stop_head_clock()
