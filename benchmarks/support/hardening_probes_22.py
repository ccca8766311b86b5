"""Issue 22's probes (the second round), run by `benchmarks/hardening_probes.py`: streams, stores,
workers and hostile requests, against the real command line, real `cascade serve` subprocesses and
a real PostgreSQL cluster on loopback (tests/integration/pg_cluster.py). Each probe reports what it
gets (exit status and message, HTTP statuses, seconds, runs and tokens) and whether a traceback, a
500, a lost run, a budget overshoot or a key in a log appeared.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import yaml

from benchmarks.hardening_probes import FAKE, FOUR_TOKENS, KEY, ROOT, SLOW_LARGE, ask, auth, cli, free_port
from tests.integration.pg_cluster import Cluster, ClusterUnavailable, start_cluster

CHAT = "/v1/chat/completions"
AUTH_LINE = f"authorization: Bearer {KEY}\r\n"
SLOW_ONE = {
    "name": "slow1",
    "completer": {
        "type": "fake",
        "replies": {"fake/m": [{"text": "4", "prompt_tokens": 3, "completion_tokens": 1, "delay_s": 30}]},
    },
    "tiers": [{"name": "only", "model": "fake/m", "max_tokens": 8}],
}
AAAA = {
    "name": "aaaa",
    "completer": {"type": "fake", "replies": {"fake/m": [{"text": '"' + "a" * 25 + '!"'}]}},
    "tiers": [{"name": "only", "model": "fake/m", "max_tokens": 64}],
}


@contextmanager
def serving(config: Path, *extra: str, log: Path | None = None, env: dict[str, str] | None = None) -> Iterator[Any]:
    """`cascade serve` in a subprocess; yields (base URL, process)."""
    from cascade.serve.background import stop_process, wait_until_up

    port = free_port()
    command = [sys.executable, "-m", "cascade", "serve", "--config", str(config), "--port", str(port), *extra]
    out = log.open("wb") if log else subprocess.DEVNULL
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env={**os.environ, "CASCADE_API_KEYS": KEY, **(env or {})},
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=out,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base, process)
        yield base, process
    finally:
        stop_process(process)
        if log:
            out.close()  # type: ignore[union-attr]


def post(base: str, body: dict[str, Any], timeout: float = 30) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        reply = httpx.post(f"{base}{CHAT}", json=body, headers=auth(), timeout=timeout)
    except httpx.HTTPError as exc:
        return {"status": type(exc).__name__, "seconds": round(time.perf_counter() - started, 2)}
    error = reply.json().get("error") if reply.headers.get("content-type", "").startswith("application/json") else None
    row: dict[str, Any] = {"status": reply.status_code, "seconds": round(time.perf_counter() - started, 2)}
    if error:
        row["code"], row["message"] = error.get("code"), str(error.get("message"))[:120]
    return row


def write(tmp: Path, name: str, data: dict[str, Any]) -> Path:
    path = tmp / name
    path.write_text(yaml.safe_dump(data))
    return path


def request_probes(tmp: Path) -> dict[str, Any]:
    """Items 3, 4, 5, 9, 10, 11: hostile request fields and limits, one server each."""
    log = tmp / "serve.log"
    probes: dict[str, Any] = {}
    tool = {"type": "function", "function": {"name": "t", "parameters": {"type": "object"}}}
    with serving(FAKE, "--log-level", "info", log=log) as (base, _):
        many = [
            {"type": "function", "function": {"name": f"t{i}", "parameters": {"type": "object"}}} for i in range(10_000)
        ]
        probes["tools_10000"] = post(base, {**ask(model="fake"), "tools": many})
        probes["tools_10000"]["body_bytes"] = len(json.dumps(many))
        probes["tools_10000_x4_health_s"] = parallel_with_health(base, {**ask(model="fake"), "tools": many}, 4)
        schema = {"type": "string", "enum": [f"value-{i:06d}" for i in range(60_000)]}
        fmt = {"type": "json_schema", "json_schema": {"name": "e", "schema": schema}}
        probes["enum_schema_940KB"] = post(base, {**ask(model="fake"), "response_format": fmt})
        for choice in ({"function": "x"}, None, 5, ["x"], {"function": None}):
            probes[f"tool_choice {json.dumps(choice)}"] = post(
                base, {**ask(model="fake"), "tools": [tool], "tool_choice": choice}
            )
        for path in [
            f"/v1/models?{KEY}",
            f"/v1/models?api_key%3D{KEY}",
            f"/v1/models?api_key;{KEY}",
            f"/v1/models/{KEY}",
            f"/{KEY}",
        ]:
            httpx.get(f"{base}{path}", headers=auth(), timeout=10)
    text = log.read_text(errors="replace")
    logged = [line[line.find("GET") :] for line in text.splitlines() if '"GET /' in line][-5:]
    probes["keys_in_access_log"] = {"logged": logged, "key_logged": KEY in text}
    aaaa = write(tmp, "aaaa.yaml", AAAA)
    with serving(aaaa) as (base, _):
        fmt = {"type": "json_schema", "json_schema": {"name": "p", "schema": {"type": "string", "pattern": "^(a+)+$"}}}
        probes["regex_dos_25_a"] = post(base, {**ask(model="aaaa"), "response_format": fmt})
        backref = {
            "type": "json_schema",
            "json_schema": {"name": "p", "schema": {"type": "string", "pattern": r"(a)\1"}},
        }
        probes["regex_backreference"] = post(base, {**ask(model="aaaa"), "response_format": backref})
    priced = write(
        tmp,
        "priced.yaml",
        {
            **FOUR_TOKENS,
            "tiers": [{**FOUR_TOKENS["tiers"][0], "prices": {"input_per_token": 1e-6, "output_per_token": 1e-6}}],
        },
    )
    with serving(priced, "--key-max-cost-usd", "1e308") as (base, _):
        probes["key_max_cost_usd_1e308"] = [post(base, ask("2+2?", "demo"))["status"] for _ in range(3)]
    inf = write(tmp, "inf.yaml", {**yaml.safe_load(priced.read_text()), "budget": {"max_cost_usd": float("inf")}})
    huge = write(tmp, "huge.yaml", {**yaml.safe_load(priced.read_text()), "budget": {"max_cost_usd": 1e308}})
    probes["budget_inf_validate"] = cli("validate", str(inf))
    probes["budget_1e308_run"] = cli("run", "--config", str(huge), "2+2?")
    return probes


def parallel_with_health(base: str, body: dict[str, Any], n: int) -> dict[str, Any]:
    """`n` requests at once against --max-concurrency 1 --max-queue 0 style load; /health's latency meanwhile."""

    async def go() -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=base, headers=auth(), timeout=60) as http:
            started = time.perf_counter()
            requests = [asyncio.create_task(http.post(CHAT, json=body)) for _ in range(n)]
            await asyncio.sleep(0.05)
            health_started = time.perf_counter()
            await http.get("/health")
            health_s = time.perf_counter() - health_started
            statuses = [r.status_code for r in await asyncio.gather(*requests)]
            return {
                "statuses": statuses,
                "all_s": round(time.perf_counter() - started, 2),
                "health_s": round(health_s, 3),
            }

    return asyncio.run(go())


def stream_probe(tmp: Path, trials: int = 4) -> dict[str, Any]:
    """Item 1: stream, drop after 1 s, on a run whose large tier takes 5 s."""
    from cascade.serve.auth import key_id
    from cascade.store import open_store

    config = write(tmp, "slow.yaml", SLOW_LARGE)
    rows = []
    for trial in range(trials):
        store = str(tmp / f"stream{trial}.sqlite")
        with serving(config, "--store", store, "--key-max-tokens", "10000") as (base, _):
            with (
                suppress(httpx.HTTPError),
                httpx.stream(
                    "POST", f"{base}{CHAT}", json={**ask(model="slow"), "stream": True}, headers=auth(), timeout=1.0
                ) as streamed,
            ):
                for _ in streamed.iter_bytes():
                    pass
            time.sleep(2.0)
            opened = open_store(store)
            runs, spend = opened.runs(), opened.budget_spend(key_id(KEY))  # type: ignore[attr-defined]
            opened.close()
        rows.append(
            {
                "runs": len(runs),
                "recorded_as": runs[0].error if runs else None,
                "recorded_tokens": sum(r.total_tokens for r in runs),
                "charged_tokens": spend.tokens,
                "held_tokens": spend.held_tokens,
            }
        )
    return {"trials": rows}


def workers_probe() -> dict[str, Any]:
    """Item 2: --workers 2 with an in-memory key budget."""
    return cli("serve", "--config", str(FAKE), "--workers", "2", "--key-max-tokens", "20")


def slow_client_probes(tmp: Path) -> dict[str, Any]:
    """Item 14: 1,000 half-sent heads, a body at 1 byte/s, a hang-up mid-body."""
    log = tmp / "slow.log"
    probes: dict[str, Any] = {}
    with serving(FAKE, "--header-timeout-s", "2", "--body-timeout-s", "2", "--log-level", "info", log=log) as (base, _):
        host, port = base.removeprefix("http://").split(":")
        socks = []
        for _ in range(1000):
            with suppress(OSError):
                sock = socket.create_connection((host, int(port)), timeout=5)
                sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bea")
                socks.append(sock)
        health = time.perf_counter()
        ok = httpx.get(f"{base}/health", timeout=10).status_code
        probes["half_sent_heads"] = {
            "opened": len(socks),
            "health_meanwhile": ok,
            "health_s": round(time.perf_counter() - health, 3),
        }
        time.sleep(4.0)
        still_open = 0
        for sock in socks:
            sock.setblocking(False)
            try:
                data = sock.recv(65536)
                while data:
                    data = sock.recv(65536)
            except BlockingIOError:
                still_open += 1
            except OSError:
                pass
            sock.close()
        probes["half_sent_heads"]["still_open_after_timeout"] = still_open
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(f"POST {CHAT} HTTP/1.1\r\nhost: x\r\n{AUTH_LINE}content-length: 200\r\n\r\n".encode())
            started, reply = time.perf_counter(), b""
            with suppress(OSError):
                for byte in b'{"model": "fake"':
                    sock.sendall(bytes([byte]))
                    time.sleep(1.0)
            with suppress(OSError):
                while data := sock.recv(65536):
                    reply += data
            probes["body_at_1_byte_per_s"] = {
                "reply": reply.split(b"\r\n", 1)[0].decode(),
                "seconds": round(time.perf_counter() - started, 1),
            }
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(f"POST {CHAT} HTTP/1.1\r\nhost: x\r\n{AUTH_LINE}content-length: 500\r\n\r\n{{".encode())
            time.sleep(0.2)
        time.sleep(0.5)
        metrics = httpx.get(f"{base}/metrics", timeout=10).text
    text = log.read_text(errors="replace")
    probes["hang_up_mid_body"] = {
        "counted_499": 'status="499"' in metrics,
        "any_500": 'status="500"' in metrics,
        "run_failed_logged": "run failed" in text,
        "traceback": "Traceback" in text,
    }
    return probes


def budget_calls_probe(tmp: Path) -> dict[str, Any]:
    """Item 15: `cascade budget` after 50 concurrent requests that 5 model calls answered."""
    from benchmarks.hardening_probes import fire

    config = write(tmp, "four.yaml", FOUR_TOKENS)
    store = str(tmp / "calls.sqlite")
    with serving(config, "--store", store, "--key-max-tokens", "20", "--max-concurrency", "50") as (base, _):
        answered = sum(r.status_code == 200 for r in asyncio.run(fire(base, 50)))
    shown = subprocess.run(
        [sys.executable, "-m", "cascade", "budget", "--dsn", store, "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    account = next(iter(json.loads(shown.stdout).values()))
    return {
        "answered": answered,
        "model_calls": answered,
        "budget_calls": account["calls"],
        "budget_tokens": account["tokens"],
    }


def file_probes(tmp: Path) -> dict[str, Any]:
    """Items 12 and 13: hostile scorer paths and files; a damaged and a read-only store."""
    probes: dict[str, Any] = {}
    base_config = yaml.safe_load(FAKE.read_text())
    big = tmp / "big.json"
    with big.open("wb") as handle:
        handle.truncate(300_000_000)  # sparse: 300 MB
    (tmp / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (tmp / "calib.json").write_text(
        json.dumps(
            {
                "format": "cascade-scorer",
                "version": 1,
                "features": ["a"],
                "heads": {"*": {"mean": [0], "scale": [1], "coef": [0], "intercept": 0, "calibration": 5}},
            }
        )
    )
    for name, path in [
        ("package://os/x", "package://os/x"),
        ("package:///x", "package:///x"),
        ("package://cascade/../../..", "package://cascade/../../../etc/passwd"),
        ("deep JSON", str(tmp / "deep.json")),
        ("calibration: 5", str(tmp / "calib.json")),
        ("300 MB file", str(big)),
        ("/dev/zero", "/dev/zero"),
    ]:
        config = write(tmp, "scorer.yaml", {**base_config, "verifier": {"type": "scorer", "path": path}})
        probes[f"scorer {name}"] = cli("validate", str(config))
    probes.update(store_file_probes(tmp))
    return probes


def store_file_probes(tmp: Path) -> dict[str, Any]:
    from cascade.store import open_store
    from cascade.types import CascadeResult

    damaged = str(tmp / "damaged.sqlite")
    store = open_store(damaged)
    store._conn.execute("PRAGMA synchronous = OFF")  # type: ignore[attr-defined]
    for i in range(300):
        result = CascadeResult(
            query=f"q{i} " + "x" * 200,
            answer="a",
            accepted=True,
            final_tier="t",
            attempts=[],
            run_id=f"r{i}",
            experiment="exp-1",
            variant="control",
        )
        store.add_feedback(store.record_run(result, config_name="fake"), kind="label", value="a")
    store.close()
    with open(damaged, "r+b") as handle:
        handle.seek(4096 * 10)
        handle.write(b"\xff" * 4096)
    strict = {"overrides": {"router": {"threshold": 0.9}}}
    variants = {"name": "exp-1", "variants": {"control": {}, "strict": strict}}
    experiment = write(tmp, "exp.yaml", {**yaml.safe_load(FAKE.read_text()), "experiment": variants})
    probes = {"ab_report_damaged_store": cli("ab", "report", "--config", str(experiment), "--dsn", damaged)}
    readonly = str(tmp / "ro.sqlite")
    open_store(readonly).close()
    if subprocess.run(["chattr", "+i", readonly], check=False).returncode == 0:
        probes["run_read_only_store"] = cli("run", "--config", str(FAKE), "--store", readonly, "2+2?")
        subprocess.run(["chattr", "-i", readonly], check=False)
    return probes


def postgres_probes(tmp: Path) -> dict[str, Any]:
    """Items 6, 7, 8 against a real PostgreSQL 15 on loopback."""
    try:
        cluster = start_cluster()
    except ClusterUnavailable as exc:
        return {"skipped": str(exc)}
    try:
        return {**nul_probe(cluster, tmp), **outage_probes(cluster, tmp), **kill_probe(cluster, tmp)}
    finally:
        with suppress(Exception):
            cluster.thaw()
        cluster.remove()


def nul_probe(cluster: Cluster, tmp: Path) -> dict[str, Any]:
    from cascade.store import open_store

    log = tmp / "nul.log"
    with serving(FAKE, "--store", cluster.dsn, log=log) as (base, _):
        answered = httpx.post(f"{base}{CHAT}", json=ask("2+2\u0000", "fake"), headers=auth(), timeout=30)
        run_id = answered.headers.get("x-cascade-run-id")
        feedback = httpx.post(
            f"{base}/v1/feedback",
            headers=auth(),
            timeout=30,
            json={"run_id": run_id, "kind": "correction", "value": "Paris\u0000"},
        )
    store = open_store(cluster.dsn)
    stored = store.get_run(run_id or "")
    store.close()
    return {
        "nul_query": {"status": answered.status_code, "stored": stored is not None},
        "nul_feedback": {"status": feedback.status_code, "traceback": "Traceback" in log.read_text()},
    }


def outage_probes(cluster: Cluster, tmp: Path) -> dict[str, Any]:
    from cascade.store import open_store

    config = write(tmp, "four.yaml", FOUR_TOKENS)
    probes: dict[str, Any] = {}
    flags = ["--store", cluster.dsn, "--store-timeout-s", "2", "--spool-dir", str(tmp / "spool")]
    with serving(config, *flags, "--key-max-tokens", "1000000") as (base, _):
        assert post(base, ask("2+2?", "demo"))["status"] == 200
        cluster.stop()
        stopped = [post(base, ask("2+2?", "demo")) for _ in range(5)]
        health = httpx.get(f"{base}/health", timeout=10)
        probes["stopped_with_key_budget"] = {
            "statuses": [r["status"] for r in stopped],
            "message": stopped[-1].get("message"),
            "dsn_in_message": any("postgres" in str(r.get("message")) for r in stopped),
            "health": [health.status_code, health.json()["status"]],
        }
        cluster.start()
        time.sleep(3)
        cluster.freeze()
        frozen = [post(base, ask("2+2?", "demo"), timeout=60) for _ in range(3)]
        health = httpx.get(f"{base}/health", timeout=10)
        probes["frozen_with_key_budget"] = {
            "statuses": [r["status"] for r in frozen],
            "seconds": [r["seconds"] for r in frozen],
            "health": [health.status_code, health.json()["status"]],
        }
        cluster.thaw()
        time.sleep(3)
        probes["after_thaw"] = post(base, ask("2+2?", "demo"))["status"]
    with serving(config, *flags) as (base, _):
        ids = []
        for phase in ("up", "down", "back"):
            if phase == "down":
                cluster.stop()
            if phase == "back":
                cluster.start()
                time.sleep(3)
            for i in range(39):
                reply = httpx.post(f"{base}{CHAT}", json=ask(f"{phase} {i}+{i}?", "demo"), headers=auth(), timeout=30)
                if reply.status_code == 200:
                    ids.append(reply.headers["x-cascade-run-id"])
    store = open_store(cluster.dsn)
    stored = {r.run_id for r in store.runs(limit=1000)}
    store.close()
    probes["restart_without_budgets"] = {
        "answered": len(ids),
        "stored": len(stored & set(ids)),
        "lost": len(set(ids) - stored),
    }
    return probes


def kill_probe(cluster: Cluster, tmp: Path) -> dict[str, Any]:
    """Item 8: kill -9 mid-call with --key-max-tokens 90 (the client still waiting), then restart."""
    import threading

    from cascade.serve.auth import key_id
    from cascade.store import open_store

    slow = write(tmp, "slow1.yaml", SLOW_ONE)
    fast = write(tmp, "fast1.yaml", {**FOUR_TOKENS, "name": "slow1"})
    flags = ["--store", cluster.dsn, "--key-max-tokens", "90", "--spool-dir", str(tmp / "spool")]
    store = open_store(cluster.dsn)
    spent_before = store.budget_spend(key_id(KEY)).tokens  # type: ignore[attr-defined]  # the key's earlier probes
    with serving(slow, *flags) as (base, process):
        waiting = threading.Thread(target=post, args=(base, ask("2+2?", "slow1"), 60), daemon=True)
        waiting.start()
        time.sleep(2.0)
        held = store.budget_spend(key_id(KEY)).held_tokens  # type: ignore[attr-defined]
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    started = time.perf_counter()
    with serving(fast, *flags) as (base, _):
        restarted = time.perf_counter() - started
        spend = store.budget_spend(key_id(KEY))  # type: ignore[attr-defined]
        after = post(base, ask("2+2?", "slow1"), timeout=30)
    store.close()
    charged = spend.tokens - spent_before
    row = {"held_before_kill": held, "held_after_restart": spend.held_tokens, "charged_for_killed_call": charged}
    return {"kill_9_mid_call": {**row, "restart_s": round(restarted, 1), "next_request": after}}


PROBES = {
    "1_stream_disconnect": stream_probe,
    "2_workers_memory_budget": lambda tmp: workers_probe(),
    "3_4_5_9_10_11_requests": request_probes,
    "6_7_8_postgres": postgres_probes,
    "12_13_files": file_probes,
    "14_slow_clients": slow_client_probes,
    "15_budget_calls": budget_calls_probe,
}


def run_all(tmp: Path, only: str | None = None) -> dict[str, Any]:
    """Every probe (or those whose name contains `only`)."""
    return {name: probe(tmp) for name, probe in PROBES.items() if only is None or only in name}
