"""Budgets kept in the store: one limit shared by every worker and process that serves a key.

Two tables (migration 6): `budget_spend` (what an account has spent, settled calls only) and
`budget_holds` (reservations of calls in flight). What an account has left is its limit minus its
spend minus its holds. A reservation reads that and inserts its hold in one transaction under the
store's `budget` lock (SQLite's write lock, a PostgreSQL advisory lock), so two processes can never
both take the last tokens; a settlement deletes the hold and adds what the call really spent, also
in one transaction, and only if the hold is still there (so nothing is charged twice).

A hold whose process died (a crash, kill -9) belongs to a call cut off in flight, which the provider
may have generated in full: it is settled at its reservation, as `cascade.metering` charges any call
cut off. Each hold names its `owner` (host, pid, a random tag); a serving process renews a lease
`budget-holder:<owner>` while it lives (`cascade.serve.key_budgets.HoldLease`) and settles the holds
of owners whose lease lapsed or whose process is gone from this host, at its start and every few
seconds after (`reap`). A hold without an owner is settled so once it expires (`hold_ttl_s`).

`StoreAccount` is such an account as `cascade.budget.metering` uses it: `cascade serve --store DSN
--key-max-tokens N` charges each API key's calls to one, so a restart or a second worker does
not forget what a key spent.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from cascade.budget.metering import Ask, Hold, Left, over_budget
from cascade.errors import BudgetUnavailableError, StoreError, StoreUnavailableError
from cascade.types import Usage


class SettlementSpool(Protocol):
    """Where a settlement the store could not take waits for it (`cascade.store.spool.Spool`)."""

    def add_settlement(self, account: str, hold_id: int | None, spent: Usage) -> None: ...

HOLD_TTL_S = 3600.0

SPEND_TABLE = """CREATE TABLE budget_spend (
    account TEXT PRIMARY KEY,
    spent_tokens BIGINT NOT NULL DEFAULT 0,
    spent_usd {float} NOT NULL DEFAULT 0,
    calls BIGINT NOT NULL DEFAULT 0,
    updated_at TEXT NOT NULL
)"""
HOLDS_TABLE = """CREATE TABLE budget_holds (
    id {pk},
    account TEXT NOT NULL,
    tokens BIGINT NOT NULL,
    usd {float} NOT NULL,
    expires_at {float} NOT NULL
)"""
HOLDS_INDEX = "CREATE INDEX budget_holds_by_account ON budget_holds (account, expires_at)"

_ENSURE = "INSERT INTO budget_spend (account, updated_at) VALUES (?, ?) ON CONFLICT (account) DO NOTHING"
_SPENT = "SELECT spent_tokens, spent_usd, calls FROM budget_spend WHERE account = ?"
_HELD = (
    "SELECT COALESCE(SUM(tokens), 0), COALESCE(SUM(usd), 0) FROM budget_holds WHERE account = ? AND expires_at > {now}"
)
_EXPIRE = "DELETE FROM budget_holds WHERE account = ? AND expires_at <= {now} RETURNING tokens, usd"
_HOLD = (
    "INSERT INTO budget_holds (account, tokens, usd, expires_at, owner) VALUES (?, ?, ?, {now} + ?, ?) RETURNING id"
)
_OWNED = "SELECT id, account, tokens, usd, owner FROM budget_holds WHERE owner IS NOT NULL AND owner <> ?"
_LIVE = "SELECT holder FROM leases WHERE name LIKE ? AND expires_at > {now}"
LEASE_PREFIX = "budget-holder:"
_RESIZE = "UPDATE budget_holds SET tokens = ?, usd = ? WHERE id = ?"
_SETTLE = (
    "UPDATE budget_spend SET spent_tokens = spent_tokens + ?, spent_usd = spent_usd + ?, calls = calls + ?, "
    "updated_at = ? WHERE account = ?"
)


@dataclass(frozen=True, slots=True)
class Spend:
    """An account's settled spend, what its calls in flight hold, and how many calls it paid for
    (settlements that spent something: a hold given back unused, such as a request's admission
    hold or a call another account refused, is no call)."""

    tokens: int
    usd: float
    calls: int
    held_tokens: int = 0
    held_usd: float = 0.0

    def left(self, max_tokens: int | None, max_cost_usd: float | None) -> Left:
        tokens = None if max_tokens is None else max_tokens - self.tokens - self.held_tokens
        usd = None if max_cost_usd is None else max_cost_usd - self.usd - self.held_usd
        return Left(tokens, usd)


@runtime_checkable
class BudgetStore(Protocol):
    """The store operations budgets need (SQLite and PostgreSQL stores have them)."""

    def reserve_budget(
        self,
        account: str,
        ask: Ask,
        max_tokens: int | None,
        max_cost_usd: float | None,
        ttl_s: float,
        owner: str | None = None,
    ) -> tuple[int | None, int, Spend]: ...

    def reap_budget_holds(self, keep: str, is_dead: Callable[[str], bool]) -> tuple[int, int]: ...

    def resize_budget_hold(self, hold_id: int, usage: Usage) -> None: ...

    def settle_budget(self, account: str, hold_id: int | None, spent: Usage) -> Spend: ...

    def budget_spend(self, account: str) -> Spend: ...

    def budget_accounts(self) -> list[tuple[str, Spend]]: ...

    def reset_budget(self, account: str) -> bool: ...


Execute = Any  # the store's `run(sql, params)` inside one transaction


def reserve(
    run: Execute,
    now: str,
    account: str,
    ask: Ask,
    limits: tuple[int | None, float | None],
    ttl_s: float,
    at: str,
    owner: str | None = None,
) -> tuple[int | None, int, Spend]:
    """Inside a locked transaction: the hold id and granted cap (None, cap < 1: refused) and the spend."""
    run(_ENSURE, (account, at))
    for tokens, usd in run(_EXPIRE.format(now=now), (account,)):  # their processes died long ago
        run(_SETTLE, (int(tokens), float(usd), 1, at, account))
    spend = read(run, now, account)
    left = spend.left(*limits)
    cap = ask.cap_within(left.tokens, left.usd)
    if cap < 1:
        return None, cap, spend
    usage = ask.usage(cap)
    hold_id = int(run(_HOLD.format(now=now), (account, _tokens(usage), usage.cost_usd, float(ttl_s), owner))[0][0])
    return hold_id, cap, spend


def resize(run: Execute, hold_id: int, usage: Usage) -> None:
    run(_RESIZE, (_tokens(usage), usage.cost_usd, hold_id))


def settle(run: Execute, now: str, account: str, hold_id: int | None, spent: Usage, at: str) -> Spend:
    if hold_id is not None and not run("DELETE FROM budget_holds WHERE id = ? RETURNING id", (hold_id,)):
        return read(run, now, account)  # settled already, at its reservation (its owner was taken for dead)
    run(_ENSURE, (account, at))
    paid = int(_tokens(spent) > 0 or spent.cost_usd > 0)
    run(_SETTLE, (_tokens(spent), spent.cost_usd, paid, at, account))
    return read(run, now, account)


def reap(run: Execute, now: str, keep: str, is_dead: Callable[[str], bool], at: str) -> tuple[int, int]:
    """Settle at their reservation the holds of owners other than `keep` that hold no lease or that
    `is_dead` says died; returns how many holds and tokens."""
    live = {str(row[0]).removeprefix(LEASE_PREFIX) for row in run(_LIVE.format(now=now), (LEASE_PREFIX + "%",))}
    holds = tokens = 0
    for hold_id, account, held, usd, owner in run(_OWNED, (keep,)):
        if owner in live and not is_dead(owner):
            continue
        run("DELETE FROM budget_holds WHERE id = ?", (hold_id,))
        run(_ENSURE, (account, at))
        run(_SETTLE, (int(held), float(usd), 1, at, account))
        holds, tokens = holds + 1, tokens + int(held)
    return holds, tokens


def read(run: Execute, now: str, account: str) -> Spend:
    spent: Sequence[Any] = (run(_SPENT, (account,)) or [(0, 0.0, 0)])[0]
    held = run(_HELD.format(now=now), (account,))[0]
    return Spend(int(spent[0]), float(spent[1]), int(spent[2]), int(held[0]), float(held[1]))


def accounts(run: Execute, now: str) -> list[tuple[str, Spend]]:
    """Every account the store has seen, by name, with its spend and holds."""
    names = [str(row[0]) for row in run("SELECT account FROM budget_spend ORDER BY account", ())]
    return [(name, read(run, now, name)) for name in names]


def reset(run: Execute, account: str) -> bool:
    """Forget an account's spend and holds (a new billing period); False if it had none."""
    held = run("DELETE FROM budget_holds WHERE account = ? RETURNING id", (account,))
    spent = run("DELETE FROM budget_spend WHERE account = ? RETURNING account", (account,))
    return bool(held or spent)


def _tokens(usage: Usage) -> int:
    return usage.prompt_tokens + usage.completion_tokens


class StoreAccount:
    """A metering account whose spend and holds live in the store (shared by processes).

    When the store cannot be reached, a reservation is refused (`BudgetUnavailableError`: nothing
    says the budget can pay) and a settlement, the record of a call that was paid, goes to `spool`
    to be applied when the store is back; `on_unavailable` hears of each such failure."""

    def __init__(
        self,
        store: BudgetStore,
        name: str,
        *,
        max_tokens: int | None = None,
        max_cost_usd: float | None = None,
        hold_ttl_s: float = HOLD_TTL_S,
        spool: SettlementSpool | None = None,
        on_unavailable: Callable[[Exception], None] | None = None,
        owner: str | None = None,
    ):
        self.store = store
        self.owner = owner
        self.name = name
        self.max_tokens = max_tokens
        self.max_cost_usd = max_cost_usd
        self.hold_ttl_s = hold_ttl_s
        self.spool = spool
        self.on_unavailable = on_unavailable
        self._left = Left(max_tokens, max_cost_usd)

    def peek(self) -> Left:
        return self._left

    async def refresh(self) -> Left:
        """Read what is left now (other processes may have spent since)."""
        return self._remember(await asyncio.to_thread(self.store.budget_spend, self.name))

    async def reserve(self, ask: Ask) -> Hold:
        try:
            hold_id, cap, spend = await asyncio.to_thread(
                self.store.reserve_budget,
                self.name,
                ask,
                self.max_tokens,
                self.max_cost_usd,
                self.hold_ttl_s,
                self.owner,
            )
        except (StoreUnavailableError, StoreError) as exc:
            self._unavailable(exc)
            why = f"{self.name} budget: {ask.model} not called: the store keeping it is unavailable"
            raise BudgetUnavailableError(why, model=ask.model, account=self.name) from exc
        left = self._remember(spend)
        if hold_id is None:
            raise over_budget(self.name, ask, left, Usage(spend.held_tokens, 0, spend.held_usd))
        self._left = Left(
            None if left.tokens is None else left.tokens - _tokens(ask.usage(cap)),
            None if left.usd is None else left.usd - ask.usage(cap).cost_usd,
        )
        return Hold(self, ask, cap, hold_id)

    async def shrink(self, hold: Hold, cap: int) -> Hold:
        try:
            await asyncio.to_thread(self.store.resize_budget_hold, hold.ref, hold.ask.usage(cap))
        except (StoreUnavailableError, StoreError) as exc:
            self._unavailable(exc)  # the hold stays at its larger size until it is settled: safe
        return Hold(self, hold.ask, cap, hold.ref)

    async def settle(self, hold: Hold, spent: Usage) -> None:
        try:
            self._remember(await asyncio.to_thread(self.store.settle_budget, self.name, hold.ref, spent))
        except (StoreUnavailableError, StoreError) as exc:
            if self.spool is None:
                raise
            self._unavailable(exc)
            await asyncio.to_thread(self.spool.add_settlement, self.name, hold.ref, spent)

    def _unavailable(self, exc: Exception) -> None:
        if self.on_unavailable is not None:
            self.on_unavailable(exc)

    def _remember(self, spend: Spend) -> Left:
        self._left = spend.left(self.max_tokens, self.max_cost_usd)
        return self._left

    def __repr__(self) -> str:
        return f"StoreAccount({self.name!r}, max_tokens={self.max_tokens}, max_cost_usd={self.max_cost_usd})"


def process_owner() -> str:
    """This process's name on its holds: host, pid and a random tag (a pid is reused, the tag is not)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def died_here(owner: str) -> bool:
    """Whether `owner` names a process on this host that no longer runs."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
