"""Budgets in the store: reservations are atomic across processes, settle replaces holds, holds of
dead processes expire. A contract: the PostgreSQL integration tests run the same class."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import random
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cascade.budget.metering import Ask
from cascade.errors import CallOverBudgetError
from cascade.store import open_store
from cascade.store.budgets import LEASE_PREFIX, StoreAccount, died_here
from cascade.types import Usage

LIMIT = 400
ASK = Ask("m", prompt_tokens=3, max_completion=10)


def _spend_from_a_process(dsn: str, seed: int, barrier: Any, holding: Any, out: Any) -> None:
    """One worker: reserve, 'call' (a random usage within the grant), settle, until refused.

    Every worker's first grant is held until all four hold one (`holding`), so the processes
    really do hold reservations at once, however the machine schedules them."""
    store = open_store(dsn)
    account = StoreAccount(store, "key-shared", max_tokens=LIMIT)
    rng = random.Random(seed)
    spent, first = 0, True

    async def go() -> None:
        nonlocal spent, first
        while True:
            try:
                hold = await account.reserve(ASK)
            except CallOverBudgetError as exc:
                if not exc.may_fit_later:
                    return  # spent: nothing will come back
                await asyncio.sleep(0.002)
                continue
            if first:
                holding.wait()
                first = False
            used = Usage(3, rng.randint(0, hold.cap))
            await account.settle(hold, used)
            spent += used.prompt_tokens + used.completion_tokens

    barrier.wait()
    asyncio.run(go())
    store.close()
    out.put(spent)


class BudgetContract:
    """What a store's budget tables must do; subclasses provide the `dsn` fixture."""

    @pytest.fixture
    def store(self, dsn: str) -> Iterator[Any]:
        opened = open_store(dsn)
        yield opened
        opened.close()

    async def test_a_reservation_is_capped_by_what_is_left_and_refused_past_it(self, store: Any) -> None:
        account = StoreAccount(store, "key-a", max_tokens=20)
        first = await account.reserve(ASK)
        second = await account.reserve(ASK)
        assert (first.cap, second.cap) == (10, 4)  # 13 held, then 3 + 4 of the 7 left
        with pytest.raises(CallOverBudgetError, match="key-a token budget") as refused:
            await account.reserve(ASK)
        assert refused.value.may_fit_later  # the holds may settle for less
        await account.settle(first, Usage(3, 1))
        await account.settle(second, Usage(3, 1))
        assert store.budget_spend("key-a").tokens == 8 and store.budget_spend("key-a").held_tokens == 0
        assert account.peek().tokens == 12

    async def test_spend_outlives_the_connection_and_other_accounts_are_apart(self, store: Any, dsn: str) -> None:
        account = StoreAccount(store, "key-b", max_tokens=10, max_cost_usd=1.0)
        await account.settle(await account.reserve(ASK), Usage(3, 5, 0.25))
        reopened = open_store(dsn)
        try:
            again = StoreAccount(reopened, "key-b", max_tokens=10, max_cost_usd=1.0)
            assert (await again.refresh()).tokens == 2
            with pytest.raises(CallOverBudgetError) as refused:
                await again.reserve(ASK)
            assert not refused.value.may_fit_later  # spent, not held: waiting cannot help
            assert reopened.budget_spend("key-other").tokens == 0
            spend = reopened.budget_spend("key-b")
            assert spend.usd == pytest.approx(0.25) and spend.calls == 1
        finally:
            reopened.close()

    async def test_holds_nobody_owns_are_settled_at_their_reservation_once_expired(self, store: Any) -> None:
        account = StoreAccount(store, "key-c", max_tokens=26, hold_ttl_s=0.3)
        await account.reserve(ASK)  # never settled: its process "died"
        time.sleep(0.4)
        assert (await account.reserve(ASK)).cap == 10  # 26 - 13 charged: the second fits, no third
        spend = store.budget_spend("key-c")
        assert (spend.tokens, spend.held_tokens, spend.calls) == (13, 13, 1)

    async def test_holds_of_a_dead_owner_are_settled_at_their_reservation_and_only_once(self, store: Any) -> None:
        """Issue 22.8: kill -9 mid-call, restart: the key's holds blocked it for an hour (then were freed,
        charging nothing). Now the next process settles them at once, as calls cut off in flight."""
        gone = subprocess.Popen(["true"])
        gone.wait()
        here = f"{socket.gethostname()}:{gone.pid}:dead"
        elsewhere = "other-host:1:lapsed"
        alive = StoreAccount(store, "key-d", max_tokens=100, owner="other-host:2:alive")
        store.acquire_lease(LEASE_PREFIX + here, here, 60)  # its lease has not lapsed, but its pid is gone
        store.acquire_lease(LEASE_PREFIX + "other-host:2:alive", "other-host:2:alive", 60)
        holds = [await StoreAccount(store, "key-d", max_tokens=100, owner=o).reserve(ASK) for o in (here, elsewhere)]
        kept = await alive.reserve(ASK)
        assert store.reap_budget_holds("me", died_here) == (2, 26)
        spend = store.budget_spend("key-d")
        assert (spend.tokens, spend.held_tokens) == (26, 13)  # the live owner's hold stays
        await holds[0].account.settle(holds[0], Usage(3, 1))  # its process came back after all: no double charge
        await alive.settle(kept, Usage(3, 2))
        assert (store.budget_spend("key-d").tokens, store.budget_spend("key-d").held_tokens) == (31, 0)

    def test_processes_reserving_at_once_never_pass_the_limit(self, dsn: str) -> None:
        ctx = multiprocessing.get_context("spawn")
        barrier, holding, out = ctx.Barrier(4), ctx.Barrier(4), ctx.Queue()
        workers = [ctx.Process(target=_spend_from_a_process, args=(dsn, i, barrier, holding, out)) for i in range(4)]
        for worker in workers:
            worker.start()
        spent = [out.get(timeout=600) for _ in workers]  # four fresh interpreters import cascade: slow under load
        for worker in workers:
            worker.join(timeout=30)
        store = open_store(dsn)
        try:
            final = store.budget_spend("key-shared")
        finally:
            store.close()
        assert final.tokens == sum(spent) <= LIMIT and final.held_tokens == 0
        assert LIMIT - final.tokens < ASK.prompt_tokens + 1  # spent until not one more call fit
        assert all(s > 0 for s in spent)  # they really did compete: each held a grant while the others did


class TestSQLiteBudgets(BudgetContract):
    @pytest.fixture
    def dsn(self, tmp_path: Path) -> str:
        return str(tmp_path / "budgets.sqlite")


async def test_cascade_budget_lists_and_resets_accounts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cascade.cli.main import main

    dsn = str(tmp_path / "cli.sqlite")
    store = open_store(dsn)
    try:
        account = StoreAccount(store, "key-1a2b3c4d", max_tokens=100)
        await account.settle(await account.reserve(ASK), Usage(3, 4, 0.5))
    finally:
        store.close()
    assert main(["budget", "--dsn", dsn, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["key-1a2b3c4d"]["tokens"] == 7 and listed["key-1a2b3c4d"]["calls"] == 1
    assert main(["budget", "--dsn", dsn, "--reset", "key-1a2b3c4d"]) == 0
    assert main(["budget", "--dsn", dsn, "--reset", "key-1a2b3c4d"]) == 2  # nothing left to reset
    assert "no budget account 'key-1a2b3c4d'" in " ".join(capsys.readouterr().err.split())
    assert main(["budget", "--dsn", dsn, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {}
