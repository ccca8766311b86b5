"""Orchestration overhead per query: the whole cascade vs the bare completer call.

Both run in this process on the same queries with the same FakeCompleter (zero delay), so the
difference is what the cascade adds: the LangGraph workflow (a `generate` and a `verify` node per
tier, the decision edge), verification, routing, records. Rounds alternate between the two so
machine noise hits both alike. Target: overhead ≤ 3 ms per query at p50.

    python -m benchmarks.overhead [--queries 500] [--rounds 5]

Last line: one JSON object with overhead_ms_p50, ratio and the raw medians (also per path:
queries accepted at the first tier and queries that escalate), the same in CPU time of this
process, and the machine's load average during the run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from collections.abc import Awaitable

from cascade import Cascade, CascadeConfig, FakeCompleter, FakeReply
from cascade.io.conversation import conversation_of
from cascade.run.tiers import build_messages
from cascade.types import CompletionRequest

CONFIG = {
    "name": "overhead",
    "tiers": [
        {
            "name": "small",
            "model": "fake/small",
            "max_tokens": 16,
            "logprobs": True,
            "answer": {"format": "number"},
            "prices": {"input_per_token": 1e-8, "output_per_token": 2e-8},
        },
        {
            "name": "large",
            "model": "fake/large",
            "max_tokens": 64,
            "logprobs": True,
            "answer": {"format": "number"},
            "prices": {"input_per_token": 1e-6, "output_per_token": 2e-6},
        },
    ],
    "verifier": {"type": "logprob"},
    "router": {"type": "threshold", "threshold": 0.5},
}


def fake() -> FakeCompleter:
    # Half the queries (even numbers) are accepted by the small tier, half escalate.
    return FakeCompleter(
        {
            "fake/small": [FakeReply("42", match=r"[02468]\?$", logprobs=[-0.05]), FakeReply("41", logprobs=[-2.0])],
            "fake/large": FakeReply("42", logprobs=[-0.01]),
        }
    )


Timing = tuple[float, float]
"""(wall seconds, CPU seconds of this process) of one query."""


async def timed(call: Awaitable[object]) -> Timing:
    wall, cpu = time.perf_counter(), time.process_time()
    await call
    return time.perf_counter() - wall, time.process_time() - cpu


async def bare_calls(queries: list[str], config: CascadeConfig) -> list[Timing]:
    """One direct completer call per query (the model the cascade would call first)."""
    completer, tier = fake(), config.tiers[0]
    return [
        await timed(
            completer.complete(
                CompletionRequest(
                    tier.model, build_messages(tier, conversation_of(query)), tier.max_tokens, logprobs=True
                )
            )
        )
        for query in queries
    ]


async def cascade_calls(queries: list[str], cascade: Cascade) -> list[Timing]:
    return [await timed(cascade.arun(query)) for query in queries]


def ms_p50(timings: list[Timing], which: int = 0) -> float:
    return statistics.median(t[which] for t in timings) * 1e3


async def main(n_queries: int, rounds: int) -> dict[str, float]:
    config = CascadeConfig.from_dict(CONFIG)
    queries = [f"What is {i} + {i}? Give the number {i}?" for i in range(n_queries)]
    cascade = Cascade(config, completer=fake())
    await cascade_calls(queries[:20], cascade)  # warm-up: compile paths, caches
    load_before = os.getloadavg()[0]
    bare: list[Timing] = []
    full: list[Timing] = []
    for _ in range(rounds):
        bare += await bare_calls(queries, config)
        cascade = Cascade(config, completer=fake())
        full += await cascade_calls(queries, cascade)
    escalates = [len((await cascade.arun(q)).attempts) > 1 for q in queries]
    escalated = [t for i, t in enumerate(full) if escalates[i % n_queries]]
    accepted = [t for i, t in enumerate(full) if not escalates[i % n_queries]]
    return {
        "queries": n_queries * rounds,
        "escalation_share": sum(escalates) / n_queries,
        "bare_ms_p50": ms_p50(bare),
        "cascade_ms_p50": ms_p50(full),
        "cascade_ms_p99": statistics.quantiles([t[0] for t in full], n=100)[98] * 1e3,
        "accepted_ms_p50": ms_p50(accepted),
        "escalated_ms_p50": ms_p50(escalated),
        "overhead_ms_p50": ms_p50(full) - ms_p50(bare),
        "ratio": ms_p50(full) / ms_p50(bare),
        # CPU time is what the cascade's own work costs; on a busy machine wall time adds the
        # waits for a core (a longer run is likelier to be preempted), which CPU time leaves out.
        "overhead_cpu_ms_p50": ms_p50(full, 1) - ms_p50(bare, 1),
        "accepted_cpu_ms_p50": ms_p50(accepted, 1),
        "escalated_cpu_ms_p50": ms_p50(escalated, 1),
        "load_1m": (load_before + os.getloadavg()[0]) / 2,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    figures = asyncio.run(main(args.queries, args.rounds))
    for key, value in figures.items():
        print(f"{key:>18}: {value:.4f}" if isinstance(value, float) else f"{key:>18}: {value}")
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()}))
