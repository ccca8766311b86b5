"""Run an ASGI app with uvicorn in a background thread on a free loopback port; stop server processes.

For tests, benchmarks and notebooks: `with serve_in_thread(app) as base_url: ...`. The server
has its own event loop in its own thread, so a synchronous client (the `openai` package) can
call it from the main thread. For a server run as a subprocess instead, `wait_until_up` waits for
its health endpoint and `stop_process` ends it.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from cascade.serve.http import MAX_HEADER_BYTES, uvicorn_options

LOOPBACK = "127.0.0.1"
# Idle keep-alive connections are closed after this long. It must exceed clients' own idle expiry
# (httpx and the openai client: 5 s, uvicorn's default too): when both sides time out together, a
# request sent on a connection the server is closing fails in transit (measured: 5 of 100 requests
# sent 4.95-5.05 s after the last one). Longer than the clients' expiry, the client always drops first.
KEEP_ALIVE_S = 75


def free_port(host: str = LOOPBACK) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve_in_thread(
    app: Any,
    *,
    port: int | None = None,
    start_timeout_s: float = 20.0,
    max_header_bytes: int = MAX_HEADER_BYTES,
    log_level: str = "warning",
    http: str | None = None,
) -> Iterator[str]:
    """Yields `http://127.0.0.1:PORT` once the server accepts connections; stops it on exit.
    `http` overrides the protocol (`cascade.serve.http.BOUNDED_H11`: the one used without httptools)."""
    import uvicorn

    options = uvicorn_options(max_header_bytes=max_header_bytes, log_level=log_level)
    config = uvicorn.Config(
        app,
        host=LOOPBACK,
        port=port or free_port(),
        lifespan="on",
        timeout_graceful_shutdown=2,
        timeout_keep_alive=KEEP_ALIVE_S,
        **(options | ({"http": http} if http else {})),
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="cascade-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"uvicorn did not start on {LOOPBACK}:{config.port}")
        time.sleep(0.01)
    try:
        yield f"http://{LOOPBACK}:{config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def wait_until_up(base: str, process: subprocess.Popen[bytes], timeout_s: float = 60.0) -> None:
    """Return once `base`/health answers 200; RuntimeError if the process exits or time runs out."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"server did not answer {base}/health within {timeout_s:.0f} s")


def stop_process(process: subprocess.Popen[bytes], *, grace_s: float = 10.0) -> None:
    """SIGTERM (a graceful shutdown), then SIGKILL if the process is still there after `grace_s`."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=grace_s)
