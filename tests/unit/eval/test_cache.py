"""The output cache shared by processes (Ray workers): no "database is locked", nothing lost."""

from __future__ import annotations

import asyncio
import multiprocessing
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from cascade.completers.fake import FakeCompleter
from cascade.eval.live.cache import CachingCompleter
from cascade.types import CompletionRequest

PROCESSES = 6
WRITES = 60


def _request(text: str) -> CompletionRequest:
    return CompletionRequest(model="m", messages=[{"role": "user", "content": text}], max_tokens=4)


def _writer(path: str, worker: int, barrier: Any, errors: Any) -> None:
    """Every worker opens the cache at the same instant, then writes its own and shared keys."""
    barrier.wait()
    cache = CachingCompleter(FakeCompleter({"m": "x"}), path, busy_timeout_s=0.001)  # contention shows at once

    async def go() -> None:
        for k in range(WRITES):
            await cache.complete(_request(f"own {worker} {k}"))
            await cache.complete(_request(f"shared {k}"))

    asyncio.run(go())
    errors.put(cache.write_errors)


def test_processes_sharing_one_cache_under_contention_lose_nothing(tmp_path: Path) -> None:
    """SQLite's own wait is made ~0 so every overlap between writers surfaces as SQLITE_BUSY:
    the retries must absorb all of it (the old cache failed with 'database is locked')."""
    path = str(tmp_path / "cache.sqlite")
    ctx = multiprocessing.get_context("fork")
    barrier, errors = ctx.Barrier(PROCESSES), ctx.Queue()
    workers = [ctx.Process(target=_writer, args=(path, i, barrier, errors)) for i in range(PROCESSES)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [w.exitcode for w in workers] == [0] * PROCESSES
    assert [errors.get(timeout=5) for _ in workers] == [0] * PROCESSES
    with sqlite3.connect(path) as db:
        stored = db.execute("SELECT COUNT(*) FROM completions").fetchone()[0]
    assert stored == PROCESSES * WRITES + WRITES


async def test_a_cache_that_cannot_be_written_still_returns_the_answer(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = CachingCompleter(FakeCompleter({"m": "paid for"}), tmp_path / "c.sqlite", retry_s=0.05)
    cache._db.execute("PRAGMA query_only = ON")  # every write now fails
    completion = await cache.complete(_request("q"))
    assert completion.text == "paid for" and cache.write_errors == 1
    assert "could not store an output" in caplog.text
