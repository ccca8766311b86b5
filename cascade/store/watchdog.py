"""A deadline for blocking database calls: past it, the connection's socket is shut down.

A server that is stopped answers nothing, and one frozen (SIGSTOP, a hung host) keeps the TCP
connection open while answering nothing, so a call on it blocks for good, and so does every call
queued behind it. A statement timeout does not help (the server enforces it, and a frozen server
enforces nothing), and cancelling needs a second connection to the same frozen server. Shutting the
socket down from another thread makes the blocked read return at once with an error; the client
library marks the connection broken and the next call opens a new one.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator


class Watchdog:
    """One thread that shuts a socket down when the call being watched outlives its deadline."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._deadline: float | None = None
        self._fd = -1
        self._thread: threading.Thread | None = None
        self._closed = False
        self.fired = False

    @contextlib.contextmanager
    def watching(self, fd: int, timeout_s: float) -> Iterator[None]:
        """While the block runs, `fd` is shut down once `timeout_s` has passed; `fired` says whether it was."""
        with self._cond:
            self._fd, self._deadline, self.fired = fd, time.monotonic() + timeout_s, False
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="cascade-store-watchdog", daemon=True)
                self._thread.start()
            self._cond.notify()
        try:
            yield
        finally:
            with self._cond:
                self._deadline = None

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()

    def _run(self) -> None:
        with self._cond:
            while not self._closed:
                if self._deadline is None:
                    self._cond.wait()
                    continue
                left = self._deadline - time.monotonic()
                if left > 0:
                    self._cond.wait(left)
                    continue
                self._deadline, self.fired = None, True
                shut_down(self._fd)


def shut_down(fd: int) -> None:
    """End both directions of the socket behind `fd` (a duplicate is used, so `fd` itself stays open)."""
    with contextlib.suppress(OSError):
        sock = socket.socket(fileno=os.dup(fd))
        try:
            sock.shutdown(socket.SHUT_RDWR)
        finally:
            sock.close()
