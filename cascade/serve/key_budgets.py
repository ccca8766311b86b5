"""Per-key budgets that hold: each API key is a metering account (`cascade.budget.metering`).

`--key-max-tokens` / `--key-max-cost-usd` limit what each key's runs may spend over the server's
lifetime, failed runs included. With `--store`, a key's account lives in the store
(`cascade.store.budgets`): workers and restarts share it, and its reservations are atomic in SQL.
Without a store it lives in this process's memory.

A request is admitted only after its key has reserved the least its first tier can cost (the
prompt bound and one completion token), before it waits for a slot. When the key's other calls
in flight hold what is missing, the request waits for them to settle (`key_budget_wait_s`);
otherwise, or after that wait, it gets a 429 `insufficient_quota` naming what is left. That hold
is released when the run starts; from then on every model call reserves its own worst case and
settles what it really spent. A run whose calls the key can no longer pay for ends there; if no
tier answered, the answer is a 429 naming the budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from cascade.budget.metering import NOTHING, Account, Hold, MemoryAccount
from cascade.errors import BudgetUnavailableError, CallOverBudgetError, StoreError, StoreUnavailableError
from cascade.serve.api_errors import ApiError
from cascade.serve.store_guard import StoreGuard
from cascade.store.budgets import LEASE_PREFIX, BudgetStore, died_here, process_owner

log = logging.getLogger("cascade.serve")

if TYPE_CHECKING:
    from cascade.io.conversation import Conversation
    from cascade.run.engine import Cascade
    from cascade.types import CascadeResult


class KeyAccounts:
    """The account of each key (created on first use); None for every key when there are no limits."""

    def __init__(
        self,
        max_tokens: int | None = None,
        max_cost_usd: float | None = None,
        store: Any = None,
        guard: StoreGuard | None = None,
    ):
        self.max_tokens = max_tokens
        self.max_cost_usd = max_cost_usd
        self.store = store if isinstance(store, BudgetStore) else None
        self.guard = guard
        self.owner = process_owner()  # names this process on its holds (cascade.store.budgets)
        self._accounts: dict[str, Account] = {}
        self._lock = threading.Lock()
        self.waiting = 0  # requests waiting for budget held by calls in flight

    @property
    def enabled(self) -> bool:
        return self.max_tokens is not None or self.max_cost_usd is not None

    def account(self, ident: str) -> Account | None:
        if not self.enabled:
            return None
        with self._lock:
            found = self._accounts.get(ident)
            if found is None:
                found = self._accounts[ident] = self._new(ident)
            return found

    async def admit(
        self, account: Account | None, cascade: Cascade, chat: Conversation, *, wait_s: float, max_waiting: int
    ) -> Hold | None:
        """Hold the least the run's first call can cost, or raise a 429 naming what the key has left.

        While the shortfall is held by the key's calls in flight (they may settle for less), wait up
        to `wait_s` for them instead of refusing a request the budget may still pay for; at most
        `max_waiting` requests wait so at once, the rest are refused.
        """
        if account is None:
            return None
        first = cascade.graph.tiers[0]
        ask = cascade.budget.asks(first, first.requests(chat, max_tokens=1, index=0))[0]
        deadline, pause = time.monotonic() + wait_s, 0.005
        while True:
            try:
                return await account.reserve(ask)
            except BudgetUnavailableError:
                raise StoreGuard.unavailable() from None
            except CallOverBudgetError as exc:
                if not exc.may_fit_later or time.monotonic() + pause > deadline or self.waiting >= max_waiting:
                    raise quota_error(str(exc)) from None
            self.waiting += 1
            try:
                await asyncio.sleep(pause)
            finally:
                self.waiting -= 1
            pause = min(pause * 2, 0.25)

    def _new(self, ident: str) -> Account:
        tokens, usd = self.max_tokens, self.max_cost_usd
        if self.store is not None:
            from cascade.store.budgets import StoreAccount

            spool, on_unavailable = (self.guard.spool, self.guard.down) if self.guard else (None, None)
            return StoreAccount(
                self.store,
                ident,
                max_tokens=tokens,
                max_cost_usd=usd,
                spool=spool,
                on_unavailable=on_unavailable,
                owner=self.owner,
            )
        return MemoryAccount(ident, max_tokens=tokens, max_cost_usd=usd)


class HoldLease:
    """This process's claim on its budget holds in the store: the lease `budget-holder:<owner>`,
    renewed every `interval_s`. At start and at each renewal, the holds of owners whose lease lapsed,
    or whose process is gone from this host, are settled at their reservation (a crash must not hold
    a key's budget for the hold's hour, `cascade.store.budgets`)."""

    def __init__(self, store: BudgetStore, owner: str, *, interval_s: float = 5.0, ttl_s: float = 15.0) -> None:
        self.store = store
        self.owner = owner
        self.interval_s = interval_s
        self.ttl_s = ttl_s
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.beat()
        self._task = asyncio.ensure_future(self._run())

    async def beat(self) -> None:
        try:
            lease = LEASE_PREFIX + self.owner
            await asyncio.to_thread(self.store.acquire_lease, lease, self.owner, self.ttl_s)  # type: ignore[attr-defined]
            holds, tokens = await asyncio.to_thread(self.store.reap_budget_holds, self.owner, died_here)
        except (StoreUnavailableError, StoreError) as exc:
            log.debug("budget hold lease not renewed: %s", exc)
            return
        if holds:
            log.warning(
                "settled %d budget holds (%d tokens) of processes that died, at their reservation", holds, tokens
            )

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self.beat()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        with contextlib.suppress(StoreUnavailableError, StoreError):
            await asyncio.to_thread(self.store.release_lease, LEASE_PREFIX + self.owner, self.owner)  # type: ignore[attr-defined]


async def release(hold: Hold | None) -> None:
    """Give an admission hold back (shielded: it must happen even if the request is cancelled)."""
    if hold is not None:
        await asyncio.shield(hold.account.settle(hold, NOTHING))


def refused_by(account: Account | None, result: CascadeResult) -> str | None:
    """Why the key's budget stopped a run that answered nothing (None if something else did)."""
    if account is None or result.answer is not None:
        return None
    prefix = f"{account.name} "
    reasons = [result.stop_reason, *(a.error or "" for a in result.attempts)]
    return next((r for r in reasons if r.startswith(prefix)), None)


def quota_error(why: str) -> ApiError:
    return ApiError(429, f"this API key's budget cannot pay for the request: {why}", code="insufficient_quota")
