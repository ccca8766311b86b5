"""A labelled stream through a running `cascade serve`, feedback posted as it goes: the adaptive router
changes its decisions while the server runs, without a restart.

    python -m benchmarks.serve_learning [--delay 50] [--window 100] [--interval 0.5] [--workers 1]
                                        [--feedback label|thumbs|none] [--audit-rate R] [--key]

The stream is RouteLLM's GSM8K log (1,319 items in file order), as in `learning_replay.py`: a two-tier
cascade, Mixtral-8x7B → GPT-4-1106, whose logged outputs script the server's fake completer (a
`by_prompt` table in the YAML: each prompt's cheap answer with the logged tier-0 confidence as its
token probability, the logged tokens and cost). A tier's answer is the gold number when the log
says the model was right, else a wrong one. The client sends the items one by one to `cascade serve
--store`, and posts the gold label of item i through `POST /v1/feedback` when item i + delay is
sent (label latency). The server's background learner syncs every `--interval` seconds.

`--audit-rate R` adds `audit: {rate: R}` (issue 25): the server also sends that share of the answers
it serves from the cheap tier to GPT-4's replay, off the request path, and stores those pairs and the
escalations' for the learners (`--feedback none`: they are all it learns from). `--key` runs the
server with an API key and posts the feedback with it, so it is weighed as a key's (earned trust, a
share cap) rather than as the operator's (a server without keys: trusted).

The router is `adaptive` with the settings recorded in RESULTS.md (target EM 0.748 = the midpoint of
the two tiers' EM, fixed a priori; window 100, margin 0, step 0.05, min_evidence 50; chosen on the
first half of this stream in that section). It starts at threshold 1.0: every query escalates.

Prints per-window figures (n, escalation rate, EM, tokens and cost per query, mean threshold), the
first window against the rest, and one JSON line at the end.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from statsmodels.stats.proportion import proportion_confint

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a file too: the repository root
from benchmarks.learning_replay import DATA, Stream, hindsight_best, load_stream, static_grid  # noqa: E402
from cascade.serve.background import free_port, stop_process, wait_until_up  # noqa: E402
from cascade.store import open_store  # noqa: E402

SMALL, LARGE = "mixtral", "gpt4"
KEY = "sk-serve-learning-benchmark"
ROUTER = {"type": "adaptive", "window": 100, "margin": 0.0, "step": 0.05, "min_evidence": 50}
WARMUP = 250  # window + delay, as in learning_replay.py


@dataclass
class Served:
    """What the client saw for one item."""

    final_tier: str
    correct: bool
    tokens: int
    cost: float
    pid: int
    agrees: bool = True  # with GPT-4's logged answer: the reference without gold


def golds() -> list[str]:
    lines = (DATA / "qa" / "gsm8k_test.jsonl").read_text().splitlines()
    return [json.loads(line)["answer"].split("####")[-1].strip().replace(",", "") for line in lines]


def config(
    stream: Stream, gold: Sequence[str], router: dict[str, Any] | None = None, audit_rate: float = 0.0
) -> dict[str, Any]:
    """The cascade the server runs: two scripted tiers and the adaptive router."""
    c = stream.cascade
    small: dict[str, Any] = {}
    large: dict[str, Any] = {}
    for i, query in enumerate(stream.queries):
        conf = min(1.0, max(float(c.confidence[i, 0]), 1e-6))
        cheap, both = int(c.tokens[i, 0]), int(c.tokens[i, 1])
        small[query] = reply(gold[i], bool(c.correct[i, 0]), [math.log(conf)], cheap, float(c.cost[i, 0]))
        large[query] = reply(gold[i], bool(c.correct[i, 1]), [-0.01], both - cheap, float(c.cost[i, 1] - c.cost[i, 0]))
    return {
        "name": "gsm8k",
        "tiers": [
            {"name": SMALL, "model": "fake/mixtral-8x7b", "logprobs": True, "max_tokens": 512},
            {"name": LARGE, "model": "fake/gpt-4-1106", "logprobs": True, "max_tokens": 512},
        ],
        "verifier": {"type": "logprob", "aggregate": "min"},
        "router": {**ROUTER, "target_em": stream.target, **(router or {})},
        "completer": {"type": "fake", "by_prompt": {"fake/mixtral-8x7b": small, "fake/gpt-4-1106": large}},
        **({"audit": {"rate": audit_rate}} if audit_rate else {}),
    }


def reply(gold: str, right: bool, logprobs: list[float], tokens: int, cost: float) -> dict[str, Any]:
    prompt = max(1, tokens // 2)
    return {"text": gold if right else f"{gold}1", "logprobs": logprobs, "prompt_tokens": prompt,
            "completion_tokens": max(1, tokens - prompt), "cost_usd": max(cost, 0.0)}  # fmt: skip


def start_server(path: Path, store: str, args: argparse.Namespace) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = [sys.executable, "-m", "cascade", "serve", "--config", str(path), "--store", store,
               "--port", str(port), "--learn-interval-s", str(args.interval), "--workers", str(args.workers),
               "--feedback-per-minute", "1000000", "--log-level", "warning"]  # fmt: skip
    env = {**os.environ, "CASCADE_API_KEYS": KEY if args.key else "", "PYTHONPATH": str(HERE.parent)}
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, env=env)
    base = f"http://127.0.0.1:{port}"
    wait_until_up(base, process, timeout_s=180)
    return process, base


def replay(base: str, stream: Stream, gold: Sequence[str], args: argparse.Namespace) -> list[Served]:
    """Every item in order; the label of item i posted when item i + delay is sent.

    With several workers each request opens a new connection, so the kernel spreads them over the
    workers (a kept-alive connection would stay with one). `--feedback thumbs` posts a thumb on the
    served answer instead of the gold label, as users would; a thumb on an escalated run says
    nothing about the cheap tier's answer."""
    delay, workers = args.delay, args.workers
    seen: list[Served] = []
    run_ids: list[str] = []
    limits = httpx.Limits(max_keepalive_connections=0 if workers > 1 else 20)
    auth = {"authorization": f"Bearer {KEY}"} if args.key else {}
    with httpx.Client(base_url=base, timeout=60, limits=limits, headers=auth) as http:
        for i, query in enumerate(stream.queries):
            body = {"model": "gsm8k", "messages": [{"role": "user", "content": query}]}
            response = http.post("/v1/chat/completions", json=body)
            response.raise_for_status()
            answer = response.json()
            info = answer["cascade"]
            run_ids.append(info["run_id"])
            text = answer["choices"][0]["message"]["content"]
            cost = float(response.headers["x-cascade-cost-usd"])
            agrees = text == reference_answer(stream, gold, i)
            seen.append(Served(info["final_tier"], text == gold[i], answer["usage"]["total_tokens"], cost, 0, agrees))
            if i >= delay and args.feedback != "none":
                http.post(
                    "/v1/feedback", json=verdict(args.feedback, run_ids, seen, gold, i - delay)
                ).raise_for_status()
            seen[-1].pid = http.get("/health").json()["pid"] if i % 10 == 0 else 0
    return seen


def reference_answer(stream: Stream, gold: Sequence[str], i: int) -> str:
    """What GPT-4 answered to item i in the scripted log (the reference without gold)."""
    return gold[i] if bool(stream.cascade.correct[i, 1]) else f"{gold[i]}1"


def verdict(kind: str, run_ids: Sequence[str], seen: Sequence[Served], gold: Sequence[str], i: int) -> dict[str, str]:
    if kind == "thumbs":
        return {"run_id": run_ids[i], "kind": "thumbs_up" if seen[i].correct else "thumbs_down"}
    return {"run_id": run_ids[i], "kind": "label", "value": gold[i]}


def thresholds(store_dsn: str) -> list[float]:
    """The threshold each run's cheap tier was judged by, in arrival order (from the store)."""
    store = open_store(store_dsn)
    try:
        runs = sorted(store.runs(limit=100_000), key=lambda r: r.seq)
    finally:
        store.close()
    return [float(r.attempts[0].threshold or 0.0) for r in runs]


def interval(k: int, n: int) -> list[float]:
    low, high = proportion_confint(k, n, alpha=0.05, method="wilson")
    return [round(float(low), 3), round(float(high), 3)]


def summary(seen: Sequence[Served], limits: Sequence[float]) -> dict[str, Any]:
    n = len(seen)
    escalated = sum(s.final_tier == LARGE for s in seen)
    right = sum(s.correct for s in seen)
    return {
        "n": n,
        "escalation_rate": round(escalated / n, 3), "escalation_ci95": interval(escalated, n),
        "em": round(right / n, 3), "em_ci95": interval(right, n),
        "agreement": round(sum(s.agrees for s in seen) / n, 3),
        "tokens_per_query": round(float(np.mean([s.tokens for s in seen])), 1),
        "cost_per_query_usd": round(float(np.mean([s.cost for s in seen])), 6),
        "mean_threshold": round(float(np.mean(limits)), 3),
    }  # fmt: skip


def paired_ratio(learned: np.ndarray, other: np.ndarray, seed: int = 0) -> tuple[float, list[float]]:
    """Total tokens learned / other on the same items, with a paired bootstrap 95% interval."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(learned), (2000, len(learned)))
    ratios = learned[picks].sum(axis=1) / other[picks].sum(axis=1)
    return round(float(learned.sum() / other.sum()), 4), [
        round(float(q), 4) for q in np.quantile(ratios, [0.025, 0.975])
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--delay", type=int, default=50, help="items between a run and its label")
    parser.add_argument("--window", type=int, default=100, help="items per reported window")
    parser.add_argument("--interval", type=float, default=0.5, help="the server's --learn-interval-s")
    parser.add_argument("--workers", type=int, default=1, help="the server's --workers")
    parser.add_argument(
        "--feedback", choices=["label", "thumbs", "none"], default="label", help="gold labels, thumbs, or none"
    )
    parser.add_argument("--audit-rate", type=float, default=0.0, help="audit this share of cheap answers (0: off)")
    parser.add_argument("--key", action="store_true", help="serve with an API key and give feedback with it")
    parser.add_argument(
        "--router", type=json.loads, default={}, help="adaptive router fields, e.g. '{\"explore\": 0.05}'"
    )
    args = parser.parse_args(argv)
    stream, gold = load_stream("gsm8k"), golds()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="serve-learning-") as tmp:
        path, store = Path(tmp) / "gsm8k.yaml", str(Path(tmp) / "store.sqlite")
        scripted = config(stream, gold, args.router, args.audit_rate)
        path.write_text(json.dumps(scripted))  # JSON is YAML, and far faster to write
        process, base = start_server(path, store, args)
        try:
            seen = replay(base, stream, gold, args)
            metrics = httpx.get(f"{base}/metrics").text
        finally:
            stop_process(process)
        limits = thresholds(store)
    elapsed = time.perf_counter() - started
    report = result(stream, seen, limits, metrics, args, elapsed)
    print_tables(report)
    print(json.dumps(report))
    return 0


def result(
    stream: Stream, seen: list[Served], limits: list[float], metrics: str, args: argparse.Namespace, elapsed: float
) -> dict[str, Any]:
    n, w = len(seen), args.window
    windows = [summary(seen[i : i + w], limits[i : i + w]) | {"items": [i, min(i + w, n)]} for i in range(0, n, w)]
    always_large = stream.cascade.tokens[:, 1].astype(float)
    served_tokens = np.array([s.tokens for s in seen], dtype=float)
    best = hindsight_best(static_grid(stream), stream.target)
    best_tokens = stream.cascade.at(best[0]).tokens.astype(float)
    after = slice(WARMUP, n)
    return {
        "stream": "routellm/gsm8k_responses.csv (Mixtral-8x7B -> GPT-4-1106)", "items": n, "delay": args.delay,
        "learn_interval_s": args.interval, "workers": args.workers, "feedback": args.feedback, "router": args.router,
        "audit_rate": args.audit_rate, "key": args.key,
        "target_em": stream.target,
        "server_pids": sorted({s.pid for s in seen if s.pid}), "elapsed_s": round(elapsed, 1),
        "first_window": windows[0], "after_warmup": summary(seen[after], limits[after]),
        "second_half": summary(seen[n // 2 :], limits[n // 2 :]), "windows": windows,
        "tokens_ratio_after_warmup_vs_always_escalate": paired_ratio(served_tokens[after], always_large[after]),
        "tokens_ratio_after_warmup_vs_hindsight_static": paired_ratio(served_tokens[after], best_tokens[after]),
        "hindsight_static_threshold": round(best[0], 4),
        "swings_after_warmup": swings(windows, WARMUP),
        "learner_state_version": _metric(metrics, "cascade_learner_state_version"),
        "labels_learned": _metric(metrics, "cascade_learned_total"),
    }  # fmt: skip


def swings(windows: Sequence[dict[str, Any]], start: int) -> dict[str, float]:
    """How much the learned policy moves between full windows after `start`: the s.d. of their mean
    thresholds and the range of their escalation rates (a steady learner: both small)."""
    later = [w for w in windows if w["items"][0] >= start and w["n"] == windows[0]["n"]]
    thresholds, rates = [w["mean_threshold"] for w in later], [w["escalation_rate"] for w in later]
    return {"threshold_sd": round(float(np.std(thresholds)), 3), "escalation_range": round(max(rates) - min(rates), 3)}


def _metric(text: str, name: str) -> float | None:
    found = re.search(rf"^{name}\{{[^}}]*\}} ([0-9.e+-]+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else None


def print_tables(report: dict[str, Any]) -> None:
    print(f"{'items':>11} {'n':>4} {'escalated':>10} {'EM':>6} {'tokens/q':>9} {'cost/q $':>10} {'threshold':>9}")
    for row in report["windows"]:
        lo, hi = row["items"]
        cost, limit = row["cost_per_query_usd"], row["mean_threshold"]
        print(f"{lo:>5}-{hi:<5} {row['n']:>4} {row['escalation_rate']:>10.2f} {row['em']:>6.3f} "
              f"{row['tokens_per_query']:>9.1f} {cost:>10.6f} {limit:>9.3f}")  # fmt: skip
    for name in ("first_window", "after_warmup", "second_half"):
        row = report[name]
        print(f"{name}: n={row['n']} escalation {row['escalation_rate']} {row['escalation_ci95']} "
              f"EM {row['em']} {row['em_ci95']} tokens/q {row['tokens_per_query']}")  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
