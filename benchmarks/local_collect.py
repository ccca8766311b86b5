"""Run tiers of the local default alone on a family's split, filling the shared output cache.

    python -m benchmarks.local_collect --families arithmetic,boolq --split calibration \
        --tiers smollm2-135m,qwen2.5-0.5b [--limit N] [--cache /work/cache/local/default.sqlite]

Each call goes through `CachingCompleter`, keyed by the exact request the tier makes, so the
scorer training (`local_calibrate.py`) and the benchmark (`local_default.py`) read the same outputs
back without calling any model, and no call is ever paid twice. Prints one line per call.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a file too: the repository root
from benchmarks.support.local_families import FAMILIES, splits
from benchmarks.support.local_outputs import COLLECT_CONFIG, DEFAULT_CACHE, tier_runtime
from cascade.completers.litellm_completer import LiteLLMCompleter
from cascade.eval.live.cache import CachingCompleter
from cascade.io.conversation import conversation_of
from cascade.io.exact_match import exact_match
from cascade.run.tiers import TierRuntime
from cascade.types import Completion

ROOT = Path(__file__).resolve().parents[1]

async def sample(tier: TierRuntime, query: str) -> Completion:
    return await tier.sample(conversation_of(query), max_tokens=tier.config.max_tokens, index=0)


async def collect(args: argparse.Namespace) -> None:
    cache = CachingCompleter(LiteLLMCompleter(), args.cache)
    for family_name in args.families.split(","):
        family = FAMILIES[family_name]
        calibration, report = splits(family)
        items = (calibration if args.split == "calibration" else report)[: args.limit]
        for tier_name in args.tiers.split(","):
            tier = tier_runtime(args.config, tier_name, cache)
            for i, item in enumerate(items):
                started = time.perf_counter()
                misses = cache.misses
                completion = await sample(tier, family.query(item))
                ok = exact_match(tier.extract(completion.text), item.answers, item.task)
                fresh = "new" if cache.misses > misses else "hit"
                print(
                    f"{family_name} {args.split} {tier_name} {i} {fresh} {time.perf_counter() - started:.1f}s "
                    f"tok={completion.prompt_tokens}+{completion.completion_tokens} ok={int(ok)}",
                    flush=True,
                )
    cache.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--split", choices=("calibration", "report"), required=True)
    parser.add_argument("--tiers", required=True)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--config", type=Path, default=COLLECT_CONFIG)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    asyncio.run(collect(parser.parse_args()))
