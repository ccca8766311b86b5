"""Issue 14's and issue 22's probes, run against the real command line and real `cascade serve` subprocesses.

Each probe is what an attacker or a careless operator would send; each is reported with what it
gets now (exit status and the first line of stderr, or the HTTP status and error code) and
whether a traceback appeared. Then the budget probe: `--concurrency` simultaneous requests
against a key budget of `--key-max-tokens` tokens, each request costing 4 tokens (3 prompt, 1
completion) through the fake completer, once with the budget in memory, once in a SQLite store
and once with `--workers 2` sharing that store.

    python -m benchmarks.hardening_probes [--concurrency 50] [--key-max-tokens 20] [--round 14|22|all]

Issue 22's probes (streams, stores, workers, hostile requests; `benchmarks/support/hardening_probes_22.py`)
also start a throwaway PostgreSQL 15 cluster on loopback when its binaries are installed.

Loopback only; no model is downloaded or called (the fake completer answers). Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
FAKE = ROOT / "configs" / "fake.yaml"
KEY = "sk-probe-0123456789abcdef"
BOMB = (
    "".join(
        f"{name}: &{name} [{', '.join([f'*{prev}'] * 9 if prev else ['x'] * 9)}]\n"
        for name, prev in zip("abcdefg", [None, *"abcdef"], strict=True)
    )
    + "tiers: [*g]\n"
)
FOUR_TOKENS = {
    "name": "demo",
    "completer": {
        "type": "fake",
        "replies": {"fake/m": [{"text": "4", "prompt_tokens": 3, "completion_tokens": 1, "delay_s": 0.02}]},
    },
    "tiers": [{"name": "only", "model": "fake/m", "max_tokens": 8}],
}
SLOW_LARGE = {
    "name": "slow",
    "completer": {
        "type": "fake",
        "replies": {
            "fake/small": [{"text": "Lyon", "logprobs": [-2.0], "prompt_tokens": 10, "completion_tokens": 1}],
            "fake/large": [{"text": "Paris", "prompt_tokens": 12, "completion_tokens": 2, "delay_s": 5}],
        },
    },
    "tiers": [
        {"name": "small", "model": "fake/small", "max_tokens": 16, "logprobs": True},
        {"name": "large", "model": "fake/large", "max_tokens": 64},
    ],
}


def cli(*argv: str | bytes, timeout: float = 120) -> dict[str, Any]:
    """Run `python -m cascade ARGV`: exit status, first stderr line, traceback or not, seconds."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "cascade", *argv], cwd=ROOT, capture_output=True, timeout=timeout, check=False
    )
    err = done.stderr.decode("utf-8", "replace")
    lines = [line.strip() for line in err.splitlines() if line.strip()]
    at = next((i for i, line in enumerate(lines) if "error:" in line), 0)
    first = " ".join(lines[at : at + 2] if lines and lines[at].endswith(":") else lines[at : at + 1])
    return {
        "exit": done.returncode,
        "message": first[:160],
        "traceback": "Traceback" in err,
        "seconds": round(time.perf_counter() - started, 2),
    }


def cli_probes(tmp: Path) -> dict[str, Any]:
    (tmp / "cycle.yaml").write_text("tiers:\n  - &t {name: x, model: m, extra: {self: *t}}\n")
    (tmp / "bomb.yaml").write_text(BOMB)
    (tmp / "latin1.yaml").write_bytes(b"name: caf\xe9\ntiers: []\n")
    (tmp / "badre.yaml").write_text(FAKE.read_text().replace(r"'\d+\s*\+\s*\d+'", "'([a-'"))
    store = str(tmp / "runs.sqlite")
    probes = {
        "yaml_alias_cycle": cli("validate", str(tmp / "cycle.yaml")),
        "yaml_alias_bomb_9_lines": cli("validate", str(tmp / "bomb.yaml")),
        "config_not_utf8": cli("validate", str(tmp / "latin1.yaml")),
        "bad_regex_in_fake_match_validate": cli("validate", str(tmp / "badre.yaml")),
        "bad_regex_in_fake_match_run": cli("run", "--config", str(tmp / "badre.yaml"), "2+2?"),
        "question_not_utf8_with_store": cli("run", "--config", str(FAKE), "--store", store, b"2+2\xff?"),
        "bad_store_path": cli("run", "--config", str(FAKE), "--store", "/proc/no/such/dir.sqlite", "2+2?"),
    }
    for option, value in [
        ("--max-concurrency", "0"),
        ("--max-body-bytes", "-1"),
        ("--key-max-tokens", "0"),
        ("--cooldown-s", "0"),
        ("--port", "99999"),
    ]:
        probes[f"serve {option} {value}"] = cli("serve", "--config", str(FAKE), option, value)
    return probes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def server(config: Path, *extra: str, log: Path | None = None) -> Iterator[str]:
    """`cascade serve` in a subprocess with one API key; yields its base URL."""
    from cascade.serve.background import stop_process, wait_until_up

    port = free_port()
    command = [sys.executable, "-m", "cascade", "serve", "--config", str(config), "--port", str(port), *extra]
    env = {**os.environ, "CASCADE_API_KEYS": KEY}
    out = log.open("wb") if log else subprocess.DEVNULL
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base, process)
        yield base
    finally:
        stop_process(process)
        if log:
            out.close()  # type: ignore[union-attr]


def auth() -> dict[str, str]:
    return {"authorization": f"Bearer {KEY}"}


def ask(content: str = "What is the capital of France?", model: str = "fake") -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": content}]}


def huge_header(base: str, size: int = 10_000_000) -> dict[str, Any]:
    """Send a 10 MB Authorization header; when does the server answer, and with what?"""
    import select

    host, port = base.removeprefix("http://").split(":")
    started, sent, reply = time.perf_counter(), 0, b""
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ")
        try:
            while sent < size and not select.select([sock], [], [], 0.002)[0]:
                sock.sendall(b"k" * 16384)
                sent += 16384
        except OSError:
            pass
        try:
            while data := sock.recv(65536):
                reply += data
        except OSError:
            pass
    status = reply.split(b" ", 2)[1].decode() if reply.startswith(b"HTTP/") else "no answer"
    return {"status": status, "bytes_sent_before_answer": sent, "seconds": round(time.perf_counter() - started, 2)}


def http_probes(tmp: Path) -> dict[str, Any]:
    store, log = str(tmp / "serve.sqlite"), tmp / "serve.log"
    slow = tmp / "slow.yaml"
    slow.write_text(yaml.safe_dump(SLOW_LARGE))
    probes: dict[str, Any] = {}
    with server(FAKE, "--store", store, "--log-level", "info", log=log) as base:
        answered = httpx.post(f"{base}/v1/chat/completions", json=ask(), headers=auth(), timeout=10)
        run_id = answered.headers["x-cascade-run-id"]
        blank = httpx.post(
            f"{base}/v1/feedback", json={"run_id": run_id, "kind": "correction", "value": "  "}, headers=auth()
        )
        probes["whitespace_correction"] = {"status": blank.status_code, "message": blank.json()["error"]["message"]}
        probes["authorization_header_10MB"] = huge_header(base)
        httpx.get(f"{base}/v1/models?api_key={KEY}", headers=auth())
    access = [line for line in log.read_text(errors="replace").splitlines() if "/v1/models?" in line]
    logged = access[-1][access[-1].find("GET") :] if access else ""
    probes["api_key_in_query_string"] = {"access_log": logged, "key_logged": KEY in log.read_text()}
    with server(slow, "--store", store, "--max-concurrency", "1") as base:
        probes["client_disconnect"] = disconnect_probe(base, store)
    return probes


def disconnect_probe(base: str, store: str) -> dict[str, Any]:
    """A client gives up after 1 s on a run whose large tier takes 5 s; a second one leaves the queue."""
    from cascade.store import open_store

    async def both() -> None:
        async with httpx.AsyncClient(base_url=base, headers=auth()) as http:
            first = asyncio.create_task(http.post("/v1/chat/completions", json=ask(model="slow"), timeout=1.0))
            await asyncio.sleep(0.3)
            for request in (http.post("/v1/chat/completions", json=ask("Queued?", "slow"), timeout=0.4), first):
                with suppress(httpx.TimeoutException):
                    await request

    started = time.perf_counter()
    asyncio.run(both())
    opened = open_store(store)
    try:
        deadline = time.monotonic() + 3
        while not (runs := opened.runs(config_name="slow")) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        opened.close()
    return {
        "runs_recorded": len(runs),
        "recorded_as": runs[0].error if runs else None,
        "charged_tokens": runs[0].total_tokens if runs else None,
        "queued_request_started": any("Queued" in r.query for r in runs),
        "seconds_until_recorded": round(time.perf_counter() - started, 2),
    }


def budget_probe(tmp: Path, concurrency: int, key_max_tokens: int) -> dict[str, Any]:
    from cascade.serve.auth import key_id
    from cascade.store import open_store

    config = tmp / "four.yaml"
    config.write_text(yaml.safe_dump(FOUR_TOKENS))
    outcome: dict[str, Any] = {}
    for name, extra in [
        ("memory", []),
        ("sqlite_store", ["--store", str(tmp / "b1.sqlite")]),
        ("sqlite_store_2_workers", ["--store", str(tmp / "b2.sqlite"), "--workers", "2"]),
    ]:
        limits = ["--key-max-tokens", str(key_max_tokens), "--max-concurrency", str(concurrency)]
        with server(config, *limits, *extra) as base:
            responses = asyncio.run(fire(base, concurrency))
        ok = [r for r in responses if r.status_code == 200]
        row: dict[str, Any] = {
            "answered": len(ok),
            "refused_429": sum(r.status_code == 429 for r in responses),
            "other": sum(r.status_code not in (200, 429) for r in responses),
            "charged_tokens": sum(r.json()["usage"]["total_tokens"] for r in ok),
        }
        if "--store" in extra:
            opened = open_store(extra[1])
            try:
                row["store_spent_tokens"] = opened.budget_spend(key_id(KEY)).tokens  # type: ignore[attr-defined]
            finally:
                opened.close()
        outcome[name] = row
    return outcome


async def fire(base: str, n: int) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=n)
    async with httpx.AsyncClient(base_url=base, headers=auth(), timeout=60, limits=limits) as http:
        requests = [http.post("/v1/chat/completions", json=ask("2+2?", "demo")) for _ in range(n)]
        return list(await asyncio.gather(*requests))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--key-max-tokens", type=int, default=20)
    parser.add_argument("--round", choices=["14", "22", "all"], default="all", help="which issue's probes")
    parser.add_argument("--only", help="issue 22's probes whose name contains this (e.g. postgres)")
    args = parser.parse_args()
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as directory:
        tmp = Path(directory)
        if args.round in ("14", "all"):
            report["cli"], report["http"] = cli_probes(tmp), http_probes(tmp)
            budget = budget_probe(tmp, args.concurrency, args.key_max_tokens)
            report["budget"] = {
                "concurrency": args.concurrency,
                "key_max_tokens": args.key_max_tokens,
                "tokens_per_request": 4,
                **budget,
            }
        if args.round in ("22", "all"):
            from benchmarks.support.hardening_probes_22 import run_all

            report["issue_22"] = run_all(tmp, args.only)
    for name, row in [*report.get("cli", {}).items(), *report.get("http", {}).items()]:
        print(f"{name:42s} {json.dumps(row)}", file=sys.stderr)
    for name, row in report.get("issue_22", {}).items():
        print(f"{name:26s} {json.dumps(row)}", file=sys.stderr)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
