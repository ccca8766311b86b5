"""`cascade serve --workers 2` on one PostgreSQL store: both workers serve, one learns, both follow.

The server runs as users start it (a subprocess, the fake completer scripted in YAML). Feedback is
posted as the answers come; the adaptive router must stop accepting the cheap tier's wrong answer
in every worker, without a restart, and exactly one worker may hold the learner's lease.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from cascade.serve.background import free_port, stop_process, wait_until_up
from cascade.store import open_store
from tests.integration.test_store_postgres import dsn, pg_server  # noqa: F401  (fixtures)
from tests.unit.serve.test_learning import QUESTION, config

pytestmark = pytest.mark.integration
KEY = "learning_state"


@pytest.fixture
def server(dsn: str, tmp_path: Path) -> Iterator[str]:  # noqa: F811
    path = tmp_path / "geo.yaml"
    data = config()
    data["completer"] = {
        "type": "fake",
        "replies": {
            "fake/small": [{"text": "Lyon", "logprobs": [-0.2], "prompt_tokens": 10, "completion_tokens": 1}],
            "fake/large": [{"text": "Paris", "logprobs": [-0.01], "prompt_tokens": 12, "completion_tokens": 2}],
        },
    }
    path.write_text(yaml.safe_dump(data))
    port = free_port()
    command = [sys.executable, "-m", "cascade", "serve", "--config", str(path), "--store", dsn, "--port", str(port),
               "--workers", "2", "--learn-interval-s", "0.5", "--log-level", "warning"]  # fmt: skip
    env = {**os.environ, "CASCADE_API_KEYS": ""}
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base, process, timeout_s=90)
        yield base
    finally:
        stop_process(process)
        log.close()


def ask(http: httpx.Client, n: int) -> list[tuple[str, str]]:
    """(final tier, run id) of `n` answers to the question."""
    answers = []
    for _ in range(n):
        body = http.post(
            "/v1/chat/completions", json={"model": "geo", "messages": [{"role": "user", "content": QUESTION}]}
        ).json()
        answers.append((body["cascade"]["final_tier"], body["cascade"]["run_id"]))
    return answers


def label(http: httpx.Client, answers: list[tuple[str, str]]) -> list[str]:
    for _, run_id in answers:
        http.post("/v1/feedback", json={"run_id": run_id, "kind": "label", "value": "Paris"})
    return [tier for tier, _ in answers]


def ask_and_label(http: httpx.Client, n: int) -> list[str]:
    return label(http, ask(http, n))


def test_two_workers_share_the_store_and_one_learned_state(server: str, dsn: str) -> None:  # noqa: F811
    pids = set()
    for _ in range(60):  # new connections, so the kernel spreads them over both workers
        with httpx.Client(base_url=server, timeout=10) as fresh:
            pids.add(fresh.get("/health").json()["pid"])
        if len(pids) == 2:
            break
    assert len(pids) == 2, "both workers should answer"
    with httpx.Client(base_url=server, timeout=10) as http:
        # Every answer is asked before any label is posted: the learner (every 0.5 s) must not
        # learn in the middle of the batch, however slowly a loaded machine serves it.
        assert set(label(http, ask(http, 20))) == {"small"}
    deadline, after = time.monotonic() + 30, []
    while time.monotonic() < deadline:
        after = []
        for _ in range(10):  # fresh connections reach both workers
            with httpx.Client(base_url=server, timeout=10) as fresh:
                after += ask_and_label(fresh, 1)
        if set(after) == {"large"}:
            break
        time.sleep(0.5)
    assert set(after) == {"large"}, f"every worker should escalate after the feedback, got {after}"
    store = open_store(dsn)
    try:
        holders = store._query("SELECT holder FROM leases WHERE name = ?", ("learn:router/adaptive/geo",))  # type: ignore[attr-defined]
        entry = store.get_state_entry("router/adaptive/geo")
        runs = store.runs(limit=1000)
    finally:
        store.close()
    assert len(holders) == 1 and str(holders[0][0]).split(":")[1] in {str(p) for p in pids}
    assert entry is not None and entry.value["model"]["n_observed"] >= 20
    assert len(runs) >= 30 and {r.config_name for r in runs} == {"geo"}
