"""Each local model alone vs the default cascade, on the same 100 items of a shared/data set.

    python -m benchmarks.local_models [--items 100] [--seed 0]

Data: SST-2 dev (../shared/data/qa/sst2_dev.tsv), asked as a short-answer question. The items are
the first N of a seeded shuffle; the default config's thresholds were tuned on items 100-299 of
the same shuffle (see benchmarks/HISTORY.md), so none of these items was used for tuning.
Every tier alone and the cascade run through one output cache, so the cascade's calls are the
very outputs the single-model rows saw.

Last line: one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from pathlib import Path

import numpy as np

from cascade import Cascade, load_config
from cascade.completers.litellm_completer import LiteLLMCompleter
from cascade.eval.analysis.metrics import bootstrap_ci
from cascade.eval.data.formats import load_dataset
from cascade.eval.live.cache import CachingCompleter
from cascade.eval.live.runner import evaluate

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "qa" / "sst2_dev.tsv"
TEMPLATE = "Is the sentiment of this review positive or negative?\nReview: {question}"


def summarise(correct: list[bool], tokens: list[int], cost: list[float], seed: int) -> dict[str, object]:
    ci = bootstrap_ci(np.array(correct, dtype=float), 2000, seed=seed)
    return {
        "em": float(np.mean(correct)),
        "em_ci": [round(ci[0], 3), round(ci[1], 3)] if ci else None,
        "total_tokens": int(sum(tokens)),
        "tokens_per_item": float(np.mean(tokens)),
        "cost_usd": float(sum(cost)),
    }


async def main(n_items: int, seed: int, config_path: Path, cache_path: Path) -> dict[str, object]:
    items = load_dataset(DATA, "sst2")
    random.Random(seed).shuffle(items)
    items = items[:n_items]
    config = load_config(config_path)
    cache = CachingCompleter(LiteLLMCompleter(), cache_path)
    started = time.perf_counter()
    run = await evaluate(Cascade(config, completer=cache), items, template=TEMPLATE)
    figures: dict[str, object] = {"dataset": "sst2_dev", "n_items": len(items), "seed": seed}
    for tier in run.log.models:
        logs = [item.tiers[tier] for item in run.log.items]
        figures[tier] = summarise(
            [bool(t.correct) for t in logs], [t.tokens or 0 for t in logs], [t.cost_usd for t in logs], seed
        )
    cascade = summarise(
        run.correct, [r.total_tokens for r in run.results], [r.total_cost_usd for r in run.results], seed
    )
    cascade["answered_by"] = {t: sum(r.final_tier == t for r in run.results) for t in run.log.models}
    cascade["escalation_rate"] = sum(len(r.attempts) > 1 for r in run.results) / len(run.results)
    figures["cascade"] = cascade
    figures["cache_hits"], figures["cache_misses"] = cache.hits, cache.misses
    figures["seconds"] = round(time.perf_counter() - started, 1)
    return figures


def print_table(figures: dict[str, object]) -> None:
    print(f"{'':>14} {'EM':>6} {'95% CI':>13} {'tokens':>8} {'tok/item':>9} {'cost USD':>10}")
    for name, row in figures.items():
        if isinstance(row, dict) and "em" in row:
            ci = row["em_ci"] or ["-", "-"]
            print(
                f"{name:>14} {row['em']:6.3f} {ci[0]:>6}-{ci[1]:<6} {row['total_tokens']:8d} "
                f"{row['tokens_per_item']:9.1f} {row['cost_usd']:10.3g}"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "local.yaml")
    parser.add_argument("--cache", type=Path, default=ROOT / "benchmarks" / "out" / "sst2-local.sqlite")
    args = parser.parse_args()
    result = asyncio.run(main(args.items, args.seed, args.config, args.cache))
    print_table(result)
    print(json.dumps(result))
