"""A store that goes down under `cascade serve` (issue 22.7), with SQLite and a switch: runs answered
meanwhile are spooled and written when it is back, budgets answer 503, /health says so. The same
against a real PostgreSQL stopped and frozen: tests/integration/test_store_outage.py."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from cascade.errors import StoreUnavailableError
from cascade.serve import ServeSettings, create_app
from cascade.store import Store, open_store
from cascade.store.spool import Spool
from tests.unit.serve.test_app import ask, demo
from tests.unit.store.test_contract import make_result


class Switch:
    """A store whose calls fail as an unreachable one's do while `down` is set."""

    def __init__(self, store: Store) -> None:
        self.inner = store
        self.down = False

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.down:
                raise StoreUnavailableError("the store test.sqlite is unavailable: switched off")
            return attr(*args, **kwargs)

        return call


@pytest.fixture
def switch(tmp_path: Path) -> Any:
    store = Switch(open_store(str(tmp_path / "s.sqlite")))
    yield store
    store.inner.close()


def served(switch: Switch, tmp_path: Path, **settings: Any) -> httpx.AsyncClient:
    cascade, _ = demo()
    values = {"spool_dir": str(tmp_path / "spool"), **settings}
    app = create_app({"demo": cascade}, ServeSettings(**values), store=switch)  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def test_runs_answered_while_the_store_is_down_are_spooled_then_written(switch: Switch, tmp_path: Path) -> None:
    async with served(switch, tmp_path) as http:
        switch.down = True
        answered = [await http.post("/v1/chat/completions", json=ask(f"{i}?")) for i in range(3)]
        assert [r.status_code for r in answered] == [200, 200, 200]
        health = await http.get("/health")
        assert health.status_code == 200 and health.json()["status"] == "degraded"
        assert health.json()["store"] == {"status": "unavailable", "down_for_s": health.json()["store"]["down_for_s"],
                                          "spooled": 3, "refusing": False}  # fmt: skip
        feedback = await http.post("/v1/feedback", json={"run_id": "x", "kind": "thumbs_up"})
        assert feedback.status_code == 503 and feedback.json()["error"]["code"] == "store_unavailable"
        switch.down = False
        for _ in range(50):
            if (await http.get("/health")).json()["status"] == "ok":
                break
            await asyncio.sleep(0.1)
    ids = {r.headers["x-cascade-run-id"] for r in answered}
    assert {r.run_id for r in switch.inner.runs()} == ids


async def test_with_key_budgets_in_the_store_requests_get_503_while_it_is_down(switch: Switch, tmp_path: Path) -> None:
    async with served(switch, tmp_path, key_max_tokens=10_000) as http:
        assert (await http.post("/v1/chat/completions", json=ask())).status_code == 200
        switch.down = True
        first = await http.post("/v1/chat/completions", json=ask())
        second = await http.post("/v1/chat/completions", json=ask())
        health = await http.get("/health")
    for refused in (first, second):
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "store_unavailable"
        assert "sqlite" not in refused.json()["error"]["message"]
    assert health.status_code == 503 and health.json()["status"] == "unavailable"


def test_a_spool_left_by_a_dead_process_is_replayed_by_the_next(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "s.sqlite"))
    try:
        dead = tmp_path / "spool" / "spool-1-dead.jsonl"
        dead.parent.mkdir()
        line = {"kind": "run", "config_name": "local", "result": make_result("r1").model_dump(mode="json")}
        dead.write_text(json.dumps(line) + "\n" + json.dumps(line) + "\n")  # twice: recorded once
        assert Spool(tmp_path / "spool").replay(store) == 2
        assert [r.run_id for r in store.runs()] == ["r1"] and not dead.exists()
    finally:
        store.close()
