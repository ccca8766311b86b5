"""uvicorn's httptools protocol with a limit on each request's head (see `cascade.serve.http`).

httptools hands a header to the protocol only once it has ended, so the limit is kept by counting
the bytes that arrive while a head is incomplete. The read in which a request begins is not
counted (it may end the previous request's body), so a head is refused at most one read (asyncio
reads up to 256 KiB) past the limit. The limit is uvicorn's `h11_max_incomplete_event_size`, the
same setting the h11 protocol obeys; this class is importable by name, so `--workers N` processes
(which unpickle uvicorn's config) get it too.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from cascade.serve.http import LINGER_S, MAX_HEADER_BYTES, head_too_large


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """Answers 431 and closes once a request's head passes the limit."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_header_bytes = int(self.config.h11_max_incomplete_event_size or MAX_HEADER_BYTES)
        self._head_bytes = 0
        self._in_head = True
        self._began = False
        self._refused = False

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes, self._in_head, self._began = 0, True, True

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # lingering: input is dropped until the connection closes
        self._began = False
        super().data_received(data)
        if self._in_head and not self._began and self.parser is not None:
            self._head_bytes += len(data)
            if self._head_bytes > self.max_header_bytes:
                self._refuse()

    def _refuse(self) -> None:
        self._refused = True
        body = head_too_large(self.max_header_bytes)
        self.logger.warning("request head over %d bytes from %s: 431", self.max_header_bytes, self.client)
        head = (
            "HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
        )
        self.transport.write(head.encode() + body)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_S, self.transport.close)
