"""Load test of `cascade serve` over loopback: throughput and latency against the bare HTTP stack.

The server runs in a subprocess (uvicorn, one worker) with configs/fake.yaml: the fake completer,
zero delay, half the queries accepted by the small tier and half escalated to the large one. The
same server also has `/baseline/v1/chat/completions`, a trivial endpoint on the same stack (uvicorn
+ FastAPI) that reads the body and returns a fixed chat.completion: no auth, parsing or cascade.
`--concurrency` clients (one httpx client and connection each, one request at a time) send the
requests; baseline and cascade phases alternate so machine noise hits both alike. Then the same
number of direct `FakeCompleter.complete` calls at the same concurrency, in this process.

    python -m benchmarks.serve_load [--requests 2000] [--concurrency 100] [--max-seconds 240]

Figures (ms; `_c1`: one client at a time; otherwise at --concurrency):
    lost                    requests, of every phase, without a 200 and the expected answer
    throughput_rps          cascade requests answered per second
    p50_ms, p99_ms          cascade latency seen by the clients
    baseline_*              the same for the trivial endpoint
    overhead_ms_p50         p50_ms_c1 - baseline_p50_ms_c1: the latency the cascade and its serving
                            add to a request that does not wait behind others
    overhead_ms_p50_loaded  p50_ms - baseline_p50_ms at --concurrency. On one event loop that is
                            busy all the time, a request waits for the work of the others in flight,
                            so this is ~concurrency x the per-request difference (Little's law)
    server_cpu_ms_per_request   server process CPU time (/proc) over the loaded phases / answers
    server_overhead_ms      the same minus the baseline's: what a cascade request costs the server
    direct_*                direct FakeCompleter.complete calls; ratio_* = served / direct

Bounded: `--requests` per figure; phases stop issuing after `--max-seconds` (then `capped` is true).
Loopback only. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from fastapi import Request
from fastapi.responses import Response

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "configs" / "fake.yaml"
HOST = "127.0.0.1"
QUERIES = [("What is 2+2?", "4"), ("What is the capital of France?", "Paris")]
BASELINE_BODY = json.dumps(
    {
        "id": "chatcmpl-baseline",
        "object": "chat.completion",
        "created": 0,
        "model": "fake",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "4"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }
).encode()


def serve(port: int) -> None:
    """The server process: the fake cascade plus the baseline endpoint, access log off."""
    import uvicorn

    from cascade.serve import ServeSettings, create_app
    from cascade.serve.background import KEEP_ALIVE_S
    from cascade.serve.worker import load_cascades

    settings = ServeSettings(max_concurrency=256, max_queue=1024)
    app = create_app(load_cascades([CONFIG]), settings)

    async def baseline(request: Request) -> Response:
        await request.body()
        return Response(BASELINE_BODY, media_type="application/json")

    app.add_api_route("/baseline/v1/chat/completions", baseline, methods=["POST"])
    uvicorn.run(app, host=HOST, port=port, log_level="warning", access_log=False, timeout_keep_alive=KEEP_ALIVE_S)


@contextlib.contextmanager
def server_process() -> Iterator[tuple[str, int]]:
    from cascade.serve.background import free_port, stop_process, wait_until_up

    port = free_port()
    env = {**os.environ, "CASCADE_API_KEYS": ""}
    command = [sys.executable, __file__, "--serve", str(port)]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL)
    base = f"http://{HOST}:{port}"
    try:
        wait_until_up(base, process)
        yield base, process.pid
    finally:
        stop_process(process)


@dataclass
class Phase:
    """Latencies (s) of the answered requests, how many were sent and lost, and the wall time."""

    latencies: list[float] = field(default_factory=list)
    sent: int = 0
    lost: int = 0
    why_lost: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0
    server_cpu_s: float = 0.0

    def add(self, other: Phase) -> None:
        self.latencies += other.latencies
        self.sent += other.sent
        self.lost += other.lost
        for reason, count in other.why_lost.items():
            self.why_lost[reason] = self.why_lost.get(reason, 0) + count
        self.wall_s += other.wall_s

    def p(self, q: int) -> float:
        return statistics.quantiles(self.latencies, n=100)[q - 1] * 1e3 if len(self.latencies) > 1 else float("nan")

    @property
    def cpu_ms(self) -> float:
        return self.server_cpu_s / len(self.latencies) * 1e3 if self.latencies else float("nan")

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.wall_s if self.wall_s else 0.0


async def load(clients: list[httpx.AsyncClient], path: str, n: int, deadline: float) -> Phase:
    """`n` requests from `len(clients)` clients, each with its own connection, one request at a time.

    One httpx client per worker: a single client shared by 100 workers spends more CPU scanning
    its connection pool than the server spends answering, and the figures would measure httpx.
    """
    phase = Phase()
    counter = iter(range(n))

    async def worker(http: httpx.AsyncClient) -> None:
        for i in counter:
            if time.monotonic() > deadline:
                return
            await one(http, path, QUERIES[i % 2] if "baseline" not in path else QUERIES[0], phase)

    started = time.perf_counter()
    await asyncio.gather(*(worker(http) for http in clients))
    phase.wall_s = time.perf_counter() - started
    return phase


async def paired(http: httpx.AsyncClient, paths: dict[str, str], n: int, deadline: float) -> dict[str, Phase]:
    """One client alternating request by request between the paths, so both see the same machine."""
    phases = {name: Phase() for name in paths}
    started = time.perf_counter()
    for i in range(n):
        if time.monotonic() > deadline:
            break
        for name, path in paths.items():
            await one(http, path, QUERIES[i % 2] if name == "cascade" else QUERIES[0], phases[name])
    for phase in phases.values():
        phase.wall_s = time.perf_counter() - started
    return phases


def _why_lost(phases: list[Phase]) -> dict[str, int]:
    merged = Phase()
    for phase in phases:
        merged.add(phase)
    return merged.why_lost


async def one(http: httpx.AsyncClient, path: str, query: tuple[str, str], phase: Phase) -> None:
    """One request; it is lost unless it gets a 200 with the expected answer."""
    body = {"model": "fake", "messages": [{"role": "user", "content": query[0]}]}
    phase.sent += 1
    started = time.perf_counter()
    try:
        response = await http.post(path, json=body)
        ok = response.status_code == 200 and response.json()["choices"][0]["message"]["content"] == query[1]
        why = f"{path}: HTTP {response.status_code}" if not ok else ""
    except httpx.HTTPError as exc:
        ok, why = False, f"{path}: {type(exc).__name__}"
    if ok:
        phase.latencies.append(time.perf_counter() - started)
    else:
        phase.lost += 1
        phase.why_lost[why] = phase.why_lost.get(why, 0) + 1


async def direct(n: int, concurrency: int) -> Phase:
    """The same number of bare FakeCompleter calls the server's small tier makes, at the same concurrency."""
    from cascade.completers.plugins import make_completer
    from cascade.config.schema import load_config
    from cascade.io.conversation import conversation_of
    from cascade.run.tiers import build_messages
    from cascade.types import CompletionRequest

    config = load_config(CONFIG)
    completer, tier = make_completer(config), config.tiers[0]
    requests = [
        CompletionRequest(tier.model, build_messages(tier, conversation_of(q)), tier.max_tokens, logprobs=True)
        for q, _ in QUERIES
    ]
    phase, gate = Phase(), asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with gate:
            started = time.perf_counter()
            await completer.complete(requests[i % 2])
            phase.latencies.append(time.perf_counter() - started)
            phase.sent += 1

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    phase.wall_s = time.perf_counter() - started
    return phase


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), or NaN elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(base: str, pid: int, n: int, concurrency: int, rounds: int, max_seconds: float) -> dict[str, object]:
    """Alternating baseline/cascade rounds at full concurrency and one at a time, then direct calls."""
    deadline = time.monotonic() + max_seconds
    paths = {"baseline": "/baseline/v1/chat/completions", "cascade": "/v1/chat/completions"}
    loaded = {name: Phase() for name in paths}
    single = {name: Phase() for name in paths}
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(httpx.AsyncClient(base_url=base, timeout=60)) for _ in range(concurrency)
        ]
        for path in paths.values():
            await load(clients, path, 2 * concurrency, deadline)  # warm-up: connections, caches, code paths
        for _ in range(rounds):
            for name, path in paths.items():
                before = cpu_seconds(pid)
                loaded[name].add(await load(clients, path, n // rounds, deadline))
                loaded[name].server_cpu_s += cpu_seconds(pid) - before
            for name, phase in (await paired(clients[0], paths, max(n // (2 * rounds), 50), deadline)).items():
                single[name].add(phase)
    capped = time.monotonic() > deadline
    return figures(loaded, single, await direct(n, concurrency), concurrency, capped=capped)


def figures(
    loaded: dict[str, Phase], single: dict[str, Phase], bare: Phase, concurrency: int, *, capped: bool
) -> dict[str, object]:
    cascade, baseline = loaded["cascade"], loaded["baseline"]
    return {
        "concurrency": concurrency,
        "requests": cascade.sent,
        "lost": sum(p.lost for p in (*loaded.values(), *single.values())),
        "why_lost": _why_lost([*loaded.values(), *single.values()]),
        "throughput_rps": cascade.rps,
        "p50_ms": cascade.p(50),
        "p99_ms": cascade.p(99),
        "baseline_rps": baseline.rps,
        "baseline_p50_ms": baseline.p(50),
        "baseline_p99_ms": baseline.p(99),
        "p50_ms_c1": single["cascade"].p(50),
        "baseline_p50_ms_c1": single["baseline"].p(50),
        "overhead_ms_p50": single["cascade"].p(50) - single["baseline"].p(50),
        "overhead_ms_p50_loaded": cascade.p(50) - baseline.p(50),
        "server_cpu_ms_per_request": cascade.cpu_ms,
        "baseline_server_cpu_ms_per_request": baseline.cpu_ms,
        "server_overhead_ms": cascade.cpu_ms - baseline.cpu_ms,
        "direct_rps": bare.rps,
        "direct_p50_ms": bare.p(50),
        "direct_p99_ms": bare.p(99),
        "ratio_throughput": cascade.rps / bare.rps if bare.rps else float("nan"),
        "ratio_p50": cascade.p(50) / bare.p(50),
        "capped": capped,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="cascade requests at full concurrency")
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2, help="baseline/cascade alternations")
    parser.add_argument("--max-seconds", type=float, default=240.0, help="stop issuing requests after this")
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    with server_process() as (base, pid):
        result = asyncio.run(measure(base, pid, args.requests, args.concurrency, args.rounds, args.max_seconds))
    for key, value in result.items():
        print(f"{key:>24}: {value:.4f}" if isinstance(value, float) else f"{key:>24}: {value}")
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()}))


if __name__ == "__main__":
    main()
