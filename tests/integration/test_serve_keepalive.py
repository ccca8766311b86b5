"""No request is lost when a client reuses a connection just as its idle time runs out.

uvicorn's default keep-alive (5 s) equals httpx's idle expiry (5 s): a request sent about 5 s
after the last one on the same connection races the server's close and fails in transit. The
server keeps idle connections open longer than clients do, so the client always drops first.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import httpx
import pytest

from cascade.serve.background import free_port, stop_process, wait_until_up

pytestmark = pytest.mark.integration

FAKE = Path(__file__).resolve().parents[2] / "configs" / "fake.yaml"
BODY = {"model": "fake", "messages": [{"role": "user", "content": "What is 2+2?"}]}


async def _second_request_after(base: str, idle_s: float, outcomes: Counter[str]) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        await http.post("/v1/chat/completions", json=BODY)
        await asyncio.sleep(idle_s)
        try:
            response = await http.post("/v1/chat/completions", json=BODY)
            outcomes[str(response.status_code)] += 1
        except httpx.HTTPError as exc:
            outcomes[type(exc).__name__] += 1


def test_requests_at_the_clients_idle_expiry_are_not_lost() -> None:
    """`cascade serve` in its own process, as deployed; 100 clients each wait 4.95-5.05 s between requests."""
    port = free_port()
    command = [sys.executable, "-m", "cascade", "serve", "--config", str(FAKE), "--port", str(port)]
    command += ["--max-queue", "256", "--log-level", "warning"]
    env = {**os.environ, "CASCADE_API_KEYS": ""}
    process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    idle = [4.95 + 0.001 * i for i in range(100)]
    outcomes: Counter[str] = Counter()
    try:
        wait_until_up(base, process)

        async def clients() -> None:
            await asyncio.gather(*(_second_request_after(base, s, outcomes) for s in idle))

        asyncio.run(clients())
    finally:
        stop_process(process)
    assert outcomes == Counter({"200": len(idle)})
