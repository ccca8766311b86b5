"""Issue 22.7: a PostgreSQL store that stops or freezes (SIGSTOP) under `cascade serve`.

Each test has a cluster of its own, since it stops or freezes it. Store calls end within their
timeout with a StoreUnavailableError; the server answers 503 in OpenAI's shape (naming no DSN) when
it needs the store, spools the runs it answers meanwhile and writes them when the store is back,
and says all of it on /health.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cascade import Cascade, CascadeConfig, FakeCompleter, FakeReply
from cascade.errors import StoreUnavailableError
from cascade.serve import ServeSettings, create_app
from cascade.serve.background import serve_in_thread
from cascade.store import open_store
from tests.integration.pg_cluster import Cluster, ClusterUnavailable, start_cluster
from tests.unit.store.test_contract import make_result

pytestmark = pytest.mark.integration
pytest.importorskip("psycopg", reason="psycopg 3 is not installed (pip install 'psycopg[binary]')")
KEY = "sk-outage-test-0123456789"
AUTH = {"authorization": f"Bearer {KEY}"}


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    try:
        started = start_cluster()
    except ClusterUnavailable as exc:
        pytest.skip(str(exc))
    try:
        yield started
    finally:
        started.thaw()  # a test that failed while the server was frozen
        started.remove()


def finishes(call: Any, within_s: float) -> tuple[bool, Any]:
    """Run `call` in a thread: whether it ended within `within_s`, and what it returned or raised."""
    outcome: list[Any] = []

    def target() -> None:
        try:
            outcome.append(call())
        except Exception as exc:
            outcome.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(within_s)
    return not thread.is_alive(), outcome[0] if outcome else None


def test_calls_on_a_frozen_or_stopped_server_end_with_an_error_and_recover(cluster: Cluster) -> None:
    store = open_store(cluster.dsn, timeout_s=1.0)
    try:
        store.record_run(make_result("before"), config_name="local")
        cluster.freeze()
        ended, outcome = finishes(lambda: store.record_run(make_result("frozen"), config_name="local"), 15)
        assert ended and isinstance(outcome, StoreUnavailableError), outcome  # before: blocked for good
        assert "no answer within 1 s" in str(outcome) and "postgres@" in str(outcome)
        cluster.thaw()
        store.record_run(make_result("after"), config_name="local")  # a new connection
        cluster.stop()
        ended, outcome = finishes(lambda: store.get_run("after"), 15)
        assert ended and isinstance(outcome, StoreUnavailableError)
        cluster.start()
        assert [r.run_id for r in store.runs()] == ["before", "after"]
    finally:
        store.close()


def app_for(dsn: str, tmp_path: Path, **settings: Any) -> Any:
    fake = FakeCompleter({"fake/m": FakeReply("4", prompt_tokens=3, completion_tokens=1)})
    config = {"name": "demo", "tiers": [{"name": "only", "model": "fake/m", "max_tokens": 8}]}
    cascade = Cascade(CascadeConfig.from_dict(config), completer=fake)
    values = {"api_keys": (KEY,), "store_timeout_s": 1.0, "spool_dir": str(tmp_path / "spool"), **settings}
    return create_app({"demo": cascade}, ServeSettings(**values), store=open_store(dsn, timeout_s=1.0), owns_store=True)


def ask(url: str, content: str = "2+2?") -> httpx.Response:
    body = {"model": "demo", "messages": [{"role": "user", "content": content}]}
    return httpx.post(f"{url}/v1/chat/completions", json=body, headers=AUTH, timeout=30)


def wait_for(predicate: Any, timeout_s: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not predicate():
        time.sleep(0.1)
    return predicate()


@pytest.mark.parametrize("outage", ["stop", "freeze"])
def test_with_key_budgets_in_the_store_an_outage_is_a_503_and_health_says_so(
    cluster: Cluster, tmp_path: Path, outage: str
) -> None:
    """Before: stopped, 1x500 then 400s naming the DSN; frozen, every request hung while /health said 200."""
    with serve_in_thread(app_for(cluster.dsn, tmp_path, key_max_tokens=1000)) as url:
        assert ask(url).status_code == 200
        (cluster.stop if outage == "stop" else cluster.freeze)()
        ended, refused = finishes(lambda: ask(url), 20)
        assert ended and refused.status_code == 503, refused
        error = refused.json()["error"]
        assert error["code"] == "store_unavailable" and error["type"] == "server_error" and "param" in error
        assert "postgres" not in error["message"] and str(cluster.port) not in error["message"]
        health = httpx.get(f"{url}/health", timeout=10)
        assert health.status_code == 503 and health.json()["store"]["status"] == "unavailable"
        (cluster.start if outage == "stop" else cluster.thaw)()
        assert wait_for(lambda: httpx.get(f"{url}/health", timeout=10).status_code == 200)
        assert ask(url).status_code == 200


def test_without_budgets_runs_answered_during_an_outage_are_spooled_then_written(
    cluster: Cluster, tmp_path: Path
) -> None:
    """Before: a restart without budgets lost 48 of 117 runs."""
    with serve_in_thread(app_for(cluster.dsn, tmp_path)) as url:
        ids = [ask(url, f"{i}+{i}?").headers["x-cascade-run-id"] for i in range(3)]
        cluster.stop()
        answered = [ask(url, f"{i}+1?") for i in range(5)]
        assert [r.status_code for r in answered] == [200] * 5
        ids += [r.headers["x-cascade-run-id"] for r in answered]
        health = httpx.get(f"{url}/health", timeout=10).json()
        assert health["status"] == "degraded" and health["store"]["spooled"] == 5
        cluster.start()
        assert wait_for(lambda: httpx.get(f"{url}/health", timeout=10).json()["status"] == "ok")
    store = open_store(cluster.dsn)
    try:
        assert sorted(r.run_id for r in store.runs()) == sorted(ids)
    finally:
        store.close()
    assert not list((tmp_path / "spool").glob("*.jsonl"))


def test_refuse_mode_refuses_while_the_store_is_down(cluster: Cluster, tmp_path: Path) -> None:
    with serve_in_thread(app_for(cluster.dsn, tmp_path, store_outage="refuse")) as url:
        cluster.stop()
        assert ask(url).status_code in (200, 503)  # the first finds the store down (and is spooled)
        assert ask(url).status_code == 503
        cluster.start()
        assert wait_for(lambda: ask(url).status_code == 200)
