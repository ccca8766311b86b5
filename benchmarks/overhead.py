"""Orchestration overhead per query: the whole cascade vs the bare completer call.

Both run in this process on the same queries with the same FakeCompleter (zero delay), so the
difference is what the cascade adds: the LangGraph workflow, verification, routing, records.
Rounds alternate between the two so machine noise hits both alike.

    python benchmarks/overhead.py [--queries 500] [--rounds 5]

Last line: one JSON object with overhead_ms_p50, ratio and the raw medians (also per path:
queries accepted at the first tier and queries that escalate).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

from cascade import Cascade, CascadeConfig, FakeCompleter, FakeReply
from cascade.tiers import build_messages
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


async def bare_calls(queries: list[str], config: CascadeConfig) -> list[float]:
    """One direct completer call per query (the model the cascade would call first)."""
    completer, tier = fake(), config.tiers[0]
    out = []
    for query in queries:
        started = time.perf_counter()
        await completer.complete(
            CompletionRequest(tier.model, build_messages(tier, query), tier.max_tokens, logprobs=True)
        )
        out.append(time.perf_counter() - started)
    return out


async def cascade_calls(queries: list[str], cascade: Cascade) -> list[float]:
    out = []
    for query in queries:
        started = time.perf_counter()
        await cascade.arun(query)
        out.append(time.perf_counter() - started)
    return out


async def main(n_queries: int, rounds: int) -> dict[str, float]:
    config = CascadeConfig.from_dict(CONFIG)
    queries = [f"What is {i} + {i}? Give the number {i}?" for i in range(n_queries)]
    cascade = Cascade(config, completer=fake())
    await cascade_calls(queries[:20], cascade)  # warm-up: compile paths, caches
    bare: list[float] = []
    full: list[float] = []
    for _ in range(rounds):
        bare += await bare_calls(queries, config)
        cascade = Cascade(config, completer=fake())
        full += await cascade_calls(queries, cascade)
    escalates = [len((await cascade.arun(q)).attempts) > 1 for q in queries]
    escalated = [t for i, t in enumerate(full) if escalates[i % n_queries]]
    accepted = [t for i, t in enumerate(full) if not escalates[i % n_queries]]
    bare_p50, full_p50 = statistics.median(bare), statistics.median(full)
    return {
        "queries": n_queries * rounds,
        "escalation_share": sum(escalates) / n_queries,
        "bare_ms_p50": bare_p50 * 1e3,
        "cascade_ms_p50": full_p50 * 1e3,
        "cascade_ms_p99": statistics.quantiles(full, n=100)[98] * 1e3,
        "accepted_ms_p50": statistics.median(accepted) * 1e3,
        "escalated_ms_p50": statistics.median(escalated) * 1e3,
        "overhead_ms_p50": (full_p50 - bare_p50) * 1e3,
        "ratio": full_p50 / bare_p50,
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
