"""Adaptive stopping vs fixed-k self-consistency: equal EM with fewer samples? Paired, one local model.

    python -m benchmarks.adaptive_consistency [--dataset multiarith] [--model local/qwen2.5-0.5b]
                                              [--items 30] [--offset 0] [--k 16] [--seed 0]

One tier with the `self_consistency` verifier, built through the project's API
(`CascadeConfig.from_dict` + `Cascade`), in five settings on the same items:

- single: the greedy answer alone (sample 0, temperature 0); also one sampled answer (sample 1);
- fixed-k: majority over k samples (stopping rule `fixed`; sample 0 greedy, 1..k-1 at 0.7);
- beta: Adaptive-Consistency's Beta rule at confidence 0.95 (Aggarwal et al. 2023, the paper's
  default), at most k samples, at least `--min-samples`;
- window: ESC's rule, stop when the last `--window` answers agree (Li et al. 2024, "Escape
  Sky-high Cost", ICLR 2024), at most k samples.

Sample i is always the same request (seed = tier seed + i) and goes through one SQLite output
cache, so the adaptive runs read exactly a prefix of the fixed-k run's samples: the comparison
is paired and costs no model call beyond fixed-k (the cache counters per stage show it).
The items are the first N of a seeded shuffle and the stopping parameters are the papers'
defaults (window 4 is the project's default; ESC's own example uses 5). Not blind: the data set
and the arithmetic prompt were chosen in k=5 probes on these same first 30 items (see
benchmarks/HISTORY.md, "the Qwen2.5-0.5B runs"); nothing was chosen by how the adaptive rules did.

Claim rule: adaptive EM lies inside fixed-k's 95% bootstrap interval (items resampled, seeded)
AND mean samples fixed / mean samples adaptive >= 2. The paired EM difference (adaptive - fixed)
gets its own bootstrap interval. Fixed-k EM for every k' <= k (free: cached prefixes) gives the
field metric "samples saved vs fixed-k at equal EM" (cascade.eval.analysis.metrics.samples_saved).

Last line: one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cascade import Cascade
from cascade.completers.litellm_completer import LiteLLMCompleter
from cascade.config.schema import CascadeConfig
from cascade.eval.analysis.metrics import bootstrap_ci, samples_saved
from cascade.eval.data.formats import load_dataset
from cascade.eval.data.items import Item
from cascade.eval.live.cache import CachingCompleter
from cascade.io.exact_match import exact_match

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
SAMPLE_TEMPERATURE = 0.7
TIER_SEED = 0
BOOTSTRAP = 2000

# A short chain of thought on one line: the calculation steps, then "The answer is N." (the
# extractor reads the last number). Examples written for this benchmark, not taken from any data set.
ARITH_PROMPT: dict[str, Any] = {
    "system": "Solve the math word problem. On one line, write the calculation steps, then 'The answer is N.'",
    "examples": [
        {
            "question": "Sara has 7 marbles. She gives 3 to Tom and then buys 5 more. How many marbles does she have?",
            "answer": "7 - 3 = 4, 4 + 5 = 9. The answer is 9.",
        },
        {
            "question": "A box holds 12 pencils. Ann buys 4 boxes and gives away 10 pencils. How many are left?",
            "answer": "12 * 4 = 48, 48 - 10 = 38. The answer is 38.",
        },
    ],
}
SST2_PROMPT: dict[str, Any] = {
    "system": "Answer with only the final answer: positive or negative.",
    "template": "Is the sentiment of this review positive or negative?\nReview: {query}",
    "examples": [
        {"question": "A warm, funny and beautifully acted film.", "answer": "positive"},
        {"question": "Dull, overlong and never once surprising.", "answer": "negative"},
    ],
}


@dataclass(frozen=True)
class Preset:
    path: str
    fmt: str
    prompt: dict[str, Any]
    answer: str
    max_tokens: int


PRESETS = {
    "singleeq": Preset("qa/arith/SingleEq.json", "arith", ARITH_PROMPT, "number", 64),
    "addsub": Preset("qa/arith/AddSub.json", "arith", ARITH_PROMPT, "number", 64),
    "multiarith": Preset("qa/arith/MultiArith.json", "arith", ARITH_PROMPT, "number", 64),
    "sst2": Preset("qa/sst2_dev.tsv", "sst2", SST2_PROMPT, "first_line", 4),
}


def build_config(
    preset: Preset,
    model: str,
    max_samples: int,
    min_samples: int,
    stopping: dict[str, Any],
    *,
    temperature: float = 0.0,
    seed: int = TIER_SEED,
) -> CascadeConfig:
    """A one-tier cascade whose tier votes over samples with the `self_consistency` verifier."""
    verifier = {"type": "self_consistency", "max_samples": max_samples, "min_samples": min_samples}
    tier = {
        "name": "sc",
        "model": model,
        "max_tokens": preset.max_tokens,
        "temperature": temperature,
        "sample_temperature": SAMPLE_TEMPERATURE,
        "seed": seed,
        "stop": ["\n"],
        "prompt": preset.prompt,
        "answer": {"format": preset.answer},
        "verifier": verifier | {"stopping": stopping},
    }
    return CascadeConfig.from_dict({"name": "adaptive-sc", "tiers": [tier], "retry": {"attempts": 2, "timeout_s": 600}})


@dataclass
class Run:
    """One method on every item: correctness, samples drawn and tokens spent, item by item."""

    correct: list[bool]
    samples: list[int]
    tokens: list[int]


def item_seed(item: Item, seeding: str) -> int:
    """The tier seed for an item: the same for all (`shared`, the project's default) or its own (`item`).

    Sample i is drawn with seed tier.seed + i. With one seed for every item, sample i starts from the
    same random numbers on every item, so items' outcomes are correlated (for a one-token answer
    sample i is the same quantile of every item's answer distribution), which a bootstrap over items
    does not account for. A per-item seed (a CRC of the item id) keeps draws independent across
    items and still deterministic per (item, index), so the cache reuse is unchanged.
    """
    return TIER_SEED if seeding == "shared" else zlib.crc32(item.id.encode()) % (1 << 30)


ConfigFor = Callable[[int], CascadeConfig]  # tier seed -> config


async def run_method(config_for: ConfigFor, cache: CachingCompleter, items: Sequence[Item], seeding: str) -> Run:
    run = Run([], [], [])
    for item in items:  # sequential: the machine is shared, and llama.cpp reuses the prompt prefix
        cascade = Cascade(config_for(item_seed(item, seeding)), completer=cache)
        result = await cascade.arun(item.prompt)
        failed = [a.error for a in result.attempts if a.decision == "failed"]
        if failed or not result.attempts:  # a model call failed: no figure should hide that
            raise RuntimeError(f"{item.id}: {failed or result.error}")
        # An answer with no number in it (result.error "no usable answer") is simply wrong.
        run.correct.append(exact_match(result.answer, item.answers, item.task))
        run.samples.append(sum(a.samples for a in result.attempts))
        run.tokens.append(result.total_tokens)
    return run


def ci(values: Sequence[float], seed: int) -> list[float]:
    interval = bootstrap_ci(np.asarray(values, dtype=float), BOOTSTRAP, seed=seed)
    return [round(interval[0], 3), round(interval[1], 3)] if interval else []


def summarise(run: Run, seed: int) -> dict[str, Any]:
    return {
        "em": round(float(np.mean(run.correct)), 4),
        "em_ci": ci(run.correct, seed),
        "samples": round(float(np.mean(run.samples)), 3),
        "total_tokens": int(sum(run.tokens)),
    }


def paired_difference(adaptive: Run, fixed: Run, seed: int) -> tuple[float, list[float]]:
    """Mean of adaptive - fixed correctness per item, with its bootstrap interval."""
    diff = np.asarray(adaptive.correct, dtype=float) - np.asarray(fixed.correct, dtype=float)
    return round(float(diff.mean()), 4), ci(diff, seed)


def claim_holds(adaptive_em: float, fixed_ci: Sequence[float], samples_fixed: float, samples_adaptive: float) -> bool:
    """Adaptive EM inside fixed-k's 95% interval and at least 2x fewer samples."""
    inside = fixed_ci[0] - 1e-9 <= adaptive_em <= fixed_ci[1] + 1e-9
    return inside and samples_adaptive > 0 and samples_fixed / samples_adaptive >= 2


async def main(args: argparse.Namespace) -> dict[str, Any]:
    preset = PRESETS[args.dataset]
    items = load_dataset(DATA / preset.path, preset.fmt)
    random.Random(args.seed).shuffle(items)
    items = items[args.offset : args.offset + args.items]
    cache = CachingCompleter(LiteLLMCompleter(), args.cache)
    k, model = args.k, args.model
    counters: dict[str, dict[str, int]] = {}
    started = time.perf_counter()

    def method(max_samples: int, min_samples: int, stopping: dict[str, Any], sampled: bool = False) -> ConfigFor:
        if sampled:  # one answer at the sampling temperature: the very request of sample 1
            return lambda seed: build_config(
                preset, model, 1, 1, stopping, temperature=SAMPLE_TEMPERATURE, seed=seed + 1
            )
        return lambda seed: build_config(preset, model, max_samples, min_samples, stopping, seed=seed)

    async def stage(name: str, config_for: ConfigFor) -> Run:
        hits, misses, t0 = cache.hits, cache.misses, time.perf_counter()
        run = await run_method(config_for, cache, items, args.seeding)
        counters[name] = {"hits": cache.hits - hits, "misses": cache.misses - misses}
        print(f"  {name:<12} {counters[name]} {time.perf_counter() - t0:7.1f}s", flush=True)
        return run

    fixed = await stage("fixed", method(k, k, {"rule": "fixed"}))
    beta = await stage("beta", method(k, args.min_samples, {"rule": "beta", "confidence": 0.95}))
    window = await stage("window", method(k, args.min_samples, {"rule": "window", "window": args.window}))
    single = await stage("single", method(1, 1, {"rule": "fixed"}))
    sampled = await stage("sampled", method(1, 1, {"rule": "fixed"}, sampled=True))
    by_k: dict[int, float] = {}
    hits, misses = cache.hits, cache.misses
    for kk in range(1, k + 1):  # fixed-k' voting for every k' <= k: cached prefixes of the fixed-k samples
        run = fixed if kk == k else await run_method(method(kk, kk, {"rule": "fixed"}), cache, items, args.seeding)
        by_k[kk] = round(float(np.mean(run.correct)), 4)
    counters["fixed_k_curve"] = {"hits": cache.hits - hits, "misses": cache.misses - misses}

    s_fixed, s_beta, s_window = summarise(fixed, args.seed), summarise(beta, args.seed), summarise(window, args.seed)
    diff_beta, diff_beta_ci = paired_difference(beta, fixed, args.seed)
    diff_window, diff_window_ci = paired_difference(window, fixed, args.seed)
    ratio_beta = round(s_fixed["samples"] / s_beta["samples"], 3)
    ratio_window = round(s_fixed["samples"] / s_window["samples"], 3)
    saved = {}
    for name, s in (("beta", s_beta), ("window", s_window)):
        matched = samples_saved(by_k, s["samples"], s["em"])
        saved[name] = None if matched is None else {"k": matched.k, "fixed_em": matched.fixed_em,
                                                     "samples_saved": round(matched.samples_saved, 3),
                                                     "fraction_saved": round(matched.fraction_saved, 3)}  # fmt: skip
    s_single, s_sampled = summarise(single, args.seed), summarise(sampled, args.seed)
    return {
        "dataset": Path(preset.path).name,
        "model": model,
        "n_items": len(items),
        "offset": args.offset,
        "seed": args.seed,
        "seeding": args.seeding,
        "k": k,
        "min_samples": args.min_samples,
        "sample_temperature": SAMPLE_TEMPERATURE,
        "beta_confidence": 0.95,
        "window": args.window,
        "em_single": s_single["em"],
        "em_single_ci": s_single["em_ci"],
        "em_sampled": s_sampled["em"],
        "em_sampled_ci": s_sampled["em_ci"],
        "em_fixed": s_fixed["em"],
        "em_fixed_ci": s_fixed["em_ci"],
        "em_beta": s_beta["em"],
        "em_beta_ci": s_beta["em_ci"],
        "em_window": s_window["em"],
        "em_window_ci": s_window["em_ci"],
        "samples_fixed": s_fixed["samples"],
        "samples_beta": s_beta["samples"],
        "samples_window": s_window["samples"],
        "ratio_beta": ratio_beta,
        "ratio_window": ratio_window,
        "tokens_single": s_single["total_tokens"],
        "tokens_fixed": s_fixed["total_tokens"],
        "tokens_beta": s_beta["total_tokens"],
        "tokens_window": s_window["total_tokens"],
        "diff_beta": diff_beta,
        "diff_beta_ci": diff_beta_ci,
        "diff_window": diff_window,
        "diff_window_ci": diff_window_ci,
        "sc_gain_ci": paired_difference(fixed, single, args.seed)[1],
        "claim_beta": claim_holds(s_beta["em"], s_fixed["em_ci"], s_fixed["samples"], s_beta["samples"]),
        "claim_window": claim_holds(s_window["em"], s_fixed["em_ci"], s_fixed["samples"], s_window["samples"]),
        "em_fixed_by_k": by_k,
        "samples_saved_at_equal_em": saved,
        "cache_by_stage": counters,
        "cache_hits": cache.hits,
        "cache_misses": cache.misses,
        "seconds": round(time.perf_counter() - started, 1),
    }


def print_table(f: dict[str, Any]) -> None:
    print(f"\n{f['dataset']}, {f['model']}, {f['n_items']} items (seed {f['seed']}), k={f['k']}, {f['seeding']} seeds")
    print(f"{'method':<22} {'EM':>6} {'95% CI':>13} {'samples/item':>13} {'tokens':>8} {'fixed/method':>13}")
    rows = [
        ("single (greedy)", "single", 1.0, "tokens_single"),
        ("single (sampled)", "sampled", 1.0, None),
        (f"fixed k={f['k']}", "fixed", f["samples_fixed"], "tokens_fixed"),
        ("adaptive beta 0.95", "beta", f["samples_beta"], "tokens_beta"),
        (f"adaptive window {f['window']}", "window", f["samples_window"], "tokens_window"),
    ]
    for label, key, samples, tokens in rows:
        lo, hi = f[f"em_{key}_ci"]
        tok = f[tokens] if tokens else "-"
        print(f"{label:<22} {f[f'em_{key}']:6.3f} {lo:6.3f}-{hi:<6.3f} {samples:13.2f} {tok:>8} "
              f"{f['samples_fixed'] / samples:12.2f}x")  # fmt: skip
    for key in ("beta", "window"):
        lo, hi = f[f"diff_{key}_ci"]
        diff, claim = f[f"diff_{key}"], f[f"claim_{key}"]
        print(f"paired EM {key} - fixed: {diff:+.3f} [{lo:+.3f}, {hi:+.3f}]; claim holds: {claim}")
    print(f"fixed-k EM by k: {f['em_fixed_by_k']}")
    print(f"samples saved vs fixed-k at equal EM: {f['samples_saved_at_equal_em']}")
    print(f"cache: {f['cache_by_stage']}; total hits {f['cache_hits']}, misses {f['cache_misses']}; {f['seconds']}s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=sorted(PRESETS), default="multiarith")
    parser.add_argument("--model", default="local/qwen2.5-0.5b")
    parser.add_argument("--items", type=int, default=30)
    parser.add_argument("--offset", type=int, default=0, help="skip this many items of the shuffle (held-apart items)")
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--min-samples", type=int, default=2)
    parser.add_argument("--window", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0, help="shuffle seed that picks the items")
    parser.add_argument("--seeding", choices=("item", "shared"), default="item", help="see item_seed()")
    parser.add_argument("--cache", type=Path, default=ROOT / "benchmarks" / "out" / "adaptive-sc.sqlite")
    result = asyncio.run(main(parser.parse_args()))
    print_table(result)
    print(json.dumps(result))
