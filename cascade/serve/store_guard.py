"""The server's view of its store: up or down, what it could not write, and the way back.

Every store call is bounded (`cascade.store`: PostgreSQL calls time out even on a frozen server,
SQLite waits a bounded time for a lock). When one fails (`StoreUnavailableError`, or a file that
turned damaged or read-only), the store is marked down:

- a run answered meanwhile is spooled (`cascade.store.spool`) and written when the store is back,
  and so is the budget settlement of every call that was paid: a paid run is never lost;
- a request that needs the store gets a 503 in OpenAI's shape at once, without waiting on it:
  feedback, and every chat request when key budgets live in the store (no budget can be checked)
  or when the operator chose `--store-outage refuse`;
- `/health` says so (503 while chat requests are refused, 200 "degraded" while runs are spooled);
- a probe checks the store every `probe_interval_s`; once it answers, the spool is replayed and
  the store is marked up again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Literal, TypeVar

from cascade.errors import StoreError, StoreUnavailableError
from cascade.serve.api_errors import ApiError
from cascade.serve.settings import ServeSettings
from cascade.store import Store
from cascade.store.spool import Spool, default_spool_dir
from cascade.types import CascadeResult

log = logging.getLogger("cascade.serve")
StoreOutage = Literal["spool", "refuse"]
STORE_FAILURES = (StoreUnavailableError, StoreError)
_T = TypeVar("_T")


class StoreGuard:
    """Tracks whether the store answers; records runs (or spools them); refuses what needs it while down."""

    def __init__(
        self,
        store: Store,
        spool: Spool | None,
        *,
        outage: StoreOutage = "spool",
        budgets_in_store: bool = False,
        probe_interval_s: float = 1.0,
    ) -> None:
        self.store = store
        self.spool = spool
        self.outage = outage
        self.budgets_in_store = budgets_in_store
        self.probe_interval_s = probe_interval_s
        self.up = True
        self.since: float | None = None
        self._probe: asyncio.Future[None] | None = None

    @property
    def refusing(self) -> bool:
        """Whether chat requests are refused now (they would need the store, or the operator said so)."""
        return not self.up and self._refuses()

    @staticmethod
    def unavailable() -> ApiError:
        """The 503 a request gets while the store is down; it names no DSN (the log does)."""
        message = "the server's store is unavailable; retry later"
        return ApiError(503, message, code="store_unavailable", headers={"Retry-After": "5"})

    def admit(self) -> None:
        """Refuse a chat request while the store is down and it would need it."""
        if self.refusing:
            raise self.unavailable()

    async def call(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """`fn(*args)` in a worker thread; a 503 while the store is down or when the call finds it so."""
        if not self.up:
            raise self.unavailable()
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except STORE_FAILURES as exc:
            self.down(exc)
            raise self.unavailable() from None

    async def record(self, result: CascadeResult, config_name: str) -> None:
        """Record the run, or spool it while the store is down (without a spool, its error is raised)."""
        if self.up or self.spool is None:
            try:
                await asyncio.to_thread(self.store.record_run, result, config_name=config_name)
                return
            except STORE_FAILURES as exc:
                self.down(exc)
                if self.spool is None:
                    raise
        assert self.spool is not None
        await asyncio.to_thread(self.spool.add_run, result, config_name)

    def down(self, exc: Exception) -> None:
        """Mark the store down and start probing for its return (on the event loop's thread)."""
        if self.up:
            log.error("store unavailable, %s: %s", "refusing requests" if self._refuses() else "spooling runs", exc)
            self.up, self.since = False, time.time()
        if self._probe is None or self._probe.done():
            self._probe = asyncio.ensure_future(self._recover())

    def _refuses(self) -> bool:
        return self.outage == "refuse" or self.budgets_in_store

    async def _recover(self) -> None:
        while True:
            await asyncio.sleep(self.probe_interval_s)
            try:
                await asyncio.to_thread(self.store.check_writable)
                written = await asyncio.to_thread(self.spool.replay, self.store) if self.spool else 0
            except STORE_FAILURES as exc:
                log.debug("store still unavailable: %s", exc)
                continue
            down_s = time.time() - (self.since or time.time())
            self.up, self.since = True, None
            log.warning("store available again after %.1f s; %d spooled writes replayed", down_s, written)
            return

    async def start(self) -> None:
        """Replay what earlier processes left in the spool (a crash during an outage)."""
        if self.spool is None:
            return
        try:
            written = await asyncio.to_thread(self.spool.replay, self.store)
        except STORE_FAILURES as exc:
            self.down(exc)
            return
        if written:
            log.warning("%d spooled writes of an earlier process replayed into the store", written)

    async def stop(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
        if self.spool is not None:
            self.spool.close()

    def health(self) -> dict[str, Any]:
        """The store's part of /health (no DSN, no error text: /health needs no key)."""
        state = "ok" if self.up else "unavailable"
        since = None if self.since is None else round(time.time() - self.since, 1)
        return {
            "status": state,
            "down_for_s": since,
            "spooled": self.spool.pending if self.spool else 0,
            "refusing": self.refusing,
        }


def guard_for(store: Store | None, settings: ServeSettings) -> StoreGuard | None:
    """The guard of a server's store, spooling where `settings` say (None without a store)."""
    if store is None:
        return None
    spool = Spool(settings.spool_dir or default_spool_dir(store))
    budgets = settings.key_max_tokens is not None or settings.key_max_cost_usd is not None
    timing = {"probe_interval_s": min(1.0, settings.store_timeout_s)}
    return StoreGuard(store, spool, outage=settings.store_outage, budgets_in_store=budgets, **timing)
