"""Per-key budgets in `cascade serve` hold under concurrency, across workers sharing a store, and
when clients disconnect (the run is cancelled, recorded, and charged what it really used)."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cascade import Cascade, CascadeConfig, FakeCompleter, FakeReply
from cascade.errors import UserError
from cascade.serve import ServeSettings, create_app
from cascade.serve.auth import key_id
from cascade.serve.background import serve_in_thread
from cascade.store import Store, open_store
from tests.unit.serve.test_app import CONFIG, ask

KEY = "sk-budget-test-0123456789"
AUTH = {"authorization": f"Bearer {KEY}"}
ONE_TIER = {"name": "demo", "tiers": [{"name": "only", "model": "fake/m", "max_tokens": 8}]}


def four_token_cascade(delay_s: float = 0.02) -> Cascade:
    """Every run: one call of 3 prompt tokens and 1 completion token (the issue's probe)."""
    fake = FakeCompleter({"fake/m": FakeReply("4", prompt_tokens=3, completion_tokens=1, delay_s=delay_s)})
    return Cascade(CascadeConfig.from_dict(ONE_TIER), completer=fake)


def app_for(cascade: Cascade, store: Store | None = None, **settings: Any) -> Any:
    return create_app({"demo": cascade}, ServeSettings(api_keys=(KEY,), **settings), store=store)


async def fire(app: Any, n: int) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=AUTH, timeout=30) as http:
        return list(await asyncio.gather(*(http.post("/v1/chat/completions", json=ask("2+2?")) for _ in range(n))))


def charged(responses: list[httpx.Response]) -> int:
    return sum(r.json()["usage"]["total_tokens"] for r in responses if r.status_code == 200)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(str(tmp_path / "store.sqlite"))
    yield opened
    opened.close()


@pytest.mark.parametrize("with_store", [False, True])
async def test_fifty_concurrent_requests_against_a_20_token_key_budget_charge_at_most_20(
    with_store: bool, tmp_path: Path
) -> None:
    """Issue 14's probe: before, all 50 succeeded and 200 tokens were charged."""
    store = open_store(str(tmp_path / "s.sqlite")) if with_store else None
    try:
        responses = await fire(app_for(four_token_cascade(), store, key_max_tokens=20, max_concurrency=50), 50)
        statuses = [r.status_code for r in responses]
        refused = [r.json()["error"] for r in responses if r.status_code == 429]
        assert set(statuses) == {200, 429} and charged(responses) <= 20
        assert statuses.count(200) == 5  # 4 tokens each: exactly what 20 tokens pay for
        assert all(e["code"] == "insufficient_quota" and e["type"] == "insufficient_quota" for e in refused)
        assert all(f"{key_id(KEY)} token budget" in e["message"] for e in refused)
        if store is not None:
            spend = store.budget_spend(key_id(KEY))  # type: ignore[attr-defined]
            assert spend.tokens == charged(responses) and spend.held_tokens == 0
            assert spend.calls == 5  # issue 22.15: releases of admission holds are no calls (was 13-77)
    finally:
        if store is not None:
            store.close()


async def test_two_workers_on_one_store_share_the_budget_and_a_restart_remembers_it(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.sqlite")
    first, second = open_store(path), open_store(path)  # one connection per worker, as in `serve --workers 2`
    try:
        apps = [app_for(four_token_cascade(), s, key_max_tokens=40, max_concurrency=50) for s in (first, second)]
        responses = [r for batch in await asyncio.gather(*(fire(app, 30) for app in apps)) for r in batch]
        assert charged(responses) <= 40 and sum(r.status_code == 200 for r in responses) == 10
        restarted = app_for(four_token_cascade(), first, key_max_tokens=40)
        again = await fire(restarted, 3)
        assert [r.status_code for r in again] == [429, 429, 429]
    finally:
        first.close()
        second.close()


async def test_a_huge_key_dollar_budget_serves_and_an_infinite_one_is_refused() -> None:
    """Issue 22.11: `--key-max-cost-usd 1e308` answered every request with a 500."""
    priced = {
        **ONE_TIER,
        "tiers": [{**ONE_TIER["tiers"][0], "prices": {"input_per_token": 1e-6, "output_per_token": 1e-6}}],
    }
    fake = FakeCompleter({"fake/m": FakeReply("4", prompt_tokens=3, completion_tokens=1)})
    cascade = Cascade(CascadeConfig.from_dict(priced), completer=fake)
    responses = await fire(app_for(cascade, key_max_cost_usd=1e308), 3)
    assert [r.status_code for r in responses] == [200, 200, 200]
    with pytest.raises(UserError, match="key_max_cost_usd: Input should be a finite number"):
        ServeSettings.checked(key_max_cost_usd=float("inf"))


async def test_a_key_budget_the_first_call_cannot_fit_is_refused_before_the_queue() -> None:
    cascade = four_token_cascade()
    responses = await fire(app_for(cascade, key_max_tokens=3), 2)  # 3 prompt tokens + 1: does not fit in 3
    assert [r.status_code for r in responses] == [429, 429]
    assert "3 tokens left, 4 or more needed" in responses[0].json()["error"]["message"]
    assert len(cascade.meter.inner.calls) == 0  # type: ignore[attr-defined]


def slow_large_cascade() -> tuple[Cascade, FakeCompleter]:
    fake = FakeCompleter(
        {
            "fake/small": FakeReply("Lyon", logprobs=[-2.0], prompt_tokens=10, completion_tokens=1),
            "fake/large": FakeReply("Paris", logprobs=[-0.01], prompt_tokens=12, completion_tokens=2, delay_s=5),
        }
    )
    return Cascade(CascadeConfig.from_dict(CONFIG), completer=fake), fake


def wait_for(predicate: Any, timeout_s: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.05)
    return predicate()


@pytest.mark.parametrize("key_max_tokens", [None, 10_000])
def test_a_client_that_disconnects_cancels_its_run_which_is_recorded_and_charged(
    store: Store, key_max_tokens: int | None
) -> None:
    """The large tier takes 5 s; the client gives up after 1 s. The run stops at once, is stored
    as cancelled, and its total is what the key was charged: the small tier's 11 tokens plus the
    large call's reservation (12 prompt + 64 cap), since the provider may have generated it all."""
    cascade, _ = slow_large_cascade()
    app = app_for(cascade, store, key_max_tokens=key_max_tokens)
    with serve_in_thread(app) as url:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{url}/v1/chat/completions", json=ask(), headers=AUTH, timeout=1.0)
        run = wait_for(lambda: store.runs(limit=10), timeout_s=3.0)  # well before the 5 s call would end
    assert run and len(run) == 1
    stored = run[0]
    assert stored.error == "cancelled: the client disconnected" and stored.answer is None
    assert [a.tier for a in stored.attempts] == ["small", "large"]
    assert stored.total_tokens == 11 + 12 + 64  # with or without a budget to charge
    spend = store.budget_spend(key_id(KEY))  # type: ignore[attr-defined]
    assert spend.tokens == (stored.total_tokens if key_max_tokens else 0) and spend.held_tokens == 0


def test_a_queued_request_whose_client_leaves_never_starts(store: Store) -> None:
    cascade, fake = slow_large_cascade()
    app = app_for(cascade, store, max_concurrency=1, key_max_tokens=10_000)
    with serve_in_thread(app) as url:

        async def both() -> None:
            async with httpx.AsyncClient(base_url=url, headers=AUTH) as http:
                first = asyncio.create_task(http.post("/v1/chat/completions", json=ask(), timeout=1.5))
                await asyncio.sleep(0.3)
                queued = http.post("/v1/chat/completions", json=ask("Capital of Peru?"), timeout=0.5)
                with pytest.raises(httpx.ReadTimeout):
                    await queued
                with pytest.raises(httpx.ReadTimeout):
                    await first

        asyncio.run(both())
        runs = wait_for(lambda: store.runs(limit=10), timeout_s=3.0)
        health = httpx.get(f"{url}/health").json()
    assert [r.query for r in runs] == [ask()["messages"][0]["content"]]  # only the first run started
    assert all("Peru" not in c.messages[-1]["content"] for c in fake.calls)
    assert health["running"] == 0 and health["waiting"] == 0


@pytest.mark.parametrize("trial", range(2))
def test_a_streaming_client_that_disconnects_cancels_its_run_which_is_recorded_and_charged(
    store: Store, trial: int
) -> None:
    """Issue 22.1: a streamed request dropped after 1 s ran on, the key was charged in full (25
    tokens), and the store kept 11 tokens or no run at all (2 of 4 trials)."""
    cascade, _ = slow_large_cascade()
    app = app_for(cascade, store, key_max_tokens=10_000)
    with serve_in_thread(app) as url:
        with (
            pytest.raises(httpx.ReadTimeout),
            httpx.stream(
                "POST", f"{url}/v1/chat/completions", json=ask(stream=True), headers=AUTH, timeout=1.0
            ) as streamed,
        ):
            assert streamed.status_code == 200
            for _ in streamed.iter_bytes():
                pass
        run = wait_for(lambda: store.runs(limit=10), timeout_s=3.0)  # well before the 5 s call would end
    spend = store.budget_spend(key_id(KEY))  # type: ignore[attr-defined]  # settled before the run is recorded
    assert run and len(run) == 1
    stored = run[0]
    assert stored.error == "cancelled: the client disconnected" and stored.answer is None
    assert [a.tier for a in stored.attempts] == ["small", "large"]
    assert stored.total_tokens == 11 + 12 + 64 and spend.tokens == stored.total_tokens and spend.held_tokens == 0


def test_a_restart_settles_the_holds_of_a_process_killed_mid_call(store: Store) -> None:
    """Issue 22.8: kill -9 mid-call with --key-max-tokens 90, restart: 429 '3 tokens left' for 3,600 s
    while the dead call's hold counted. The restarted server settles it at once, at its reservation."""
    from cascade.budget.metering import Ask
    from cascade.store.budgets import StoreAccount

    killed = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    owner = f"{socket.gethostname()}:{killed.pid}:killed"
    dead = StoreAccount(store, key_id(KEY), max_tokens=90, owner=owner)  # type: ignore[arg-type]
    asyncio.run(dead.reserve(Ask("fake/m", prompt_tokens=79, max_completion=8)))  # 87 held, as the issue's
    killed.kill()
    killed.wait()
    assert store.budget_spend(key_id(KEY)).held_tokens == 87  # type: ignore[attr-defined]
    with serve_in_thread(app_for(four_token_cascade(), store, key_max_tokens=90)):
        spend = store.budget_spend(key_id(KEY))  # type: ignore[attr-defined]
    assert (spend.held_tokens, spend.tokens) == (0, 87)
