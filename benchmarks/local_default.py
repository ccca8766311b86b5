"""The local default against each of its tiers alone, on held-apart items of six question types.

    python -m benchmarks.local_default [--families arithmetic,boolq,...] [--config configs/local.yaml]

For each family (`local_families.py`): its report items, never used to train the scorer, pick the
policy or tune the exit rule. Nothing here calls a model (but the one `capital_of_france` check):
every output comes from the output cache that `local_collect.py` filled, so an item counts once
every tier it needs has been collected there (`n`, and `not_collected` beside it):

- each tier alone, as collected; the reasoning tier's full reasoning is its recorded run minus the
  probes, and its early-exit run (the config's rule) is replayed from the recorded probes;
- the default cascade, run item by item through the real engine (pre-router, scorer verifier,
  threshold router) on a completer that serves the same cached outputs, its reasoning calls by the
  same replay (`ReplayedExit`). An item is measured when the tiers its question type may call, and
  the tiers compared alone, are collected: which items that is depends on the collection order
  only, never on how the cascade does on them.

Cost is the config's prices (proportional to parameters); tokens beside. Ratios and differences
against the best single tier are paired bootstrap intervals over the items. One JSON line per
family, then a summary JSON object as the last line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a file too: the repository root
from benchmarks.support.local_families import FAMILIES
from benchmarks.support.local_outputs import (
    COLLECT_CONFIG,
    DEFAULT_CACHE,
    QUICK,
    THINK,
    TIERS,
    CacheOnly,
    ItemOutputs,
    NotCollected,
    ReplayedExit,
    complete,
    exit_at,
    load,
)
from benchmarks.support.local_scoring import examples, full_chain
from cascade import Cascade, load_config
from cascade.completers.litellm_completer import LiteLLMCompleter
from cascade.config.schema import CascadeConfig, EarlyExitConfig, resolve_data_path
from cascade.eval.analysis.stats import bootstrap_ci, mean_difference, ratio_of_sums
from cascade.eval.live.cache import CachingCompleter
from cascade.io.answers import final
from cascade.io.exact_match import exact_match
from cascade.scoring import Scorer, calibration_report
from cascade.types import CascadeResult

ROOT = Path(__file__).resolve().parents[1]
EXIT = f"{THINK} (early exit)"
RESAMPLES = 2000


def column(correct: Sequence[bool], tokens: Sequence[int], cost: Sequence[float]) -> dict[str, Any]:
    ci = bootstrap_ci(np.array(correct, dtype=float), RESAMPLES)
    return {
        "em": float(np.mean(correct)),
        "em_ci": [round(ci[0], 3), round(ci[1], 3)] if ci else None,
        "tokens": int(sum(tokens)),
        "cost_usd": float(sum(cost)),
        "_correct": list(map(bool, correct)),
        "_tokens": list(tokens),
        "_cost": list(cost),
    }


def single_tiers(
    rows: Sequence[ItemOutputs], config: CascadeConfig, tiers: Sequence[str], rule: EarlyExitConfig
) -> dict[str, Any]:
    """Each tier alone: the quick tiers and the full reasoning as collected, and the reasoning with
    the exit `rule` replayed from the recorded probes."""
    out = {}
    for tier in tiers:
        outputs = [r.outputs[tier] for r in rows]
        out[tier] = column([o.correct for o in outputs], [o.tokens for o in outputs], [o.cost_usd for o in outputs])
    if THINK not in tiers:
        return out
    think = config.tiers[config.tier_index(THINK)]
    assert think.prices is not None
    correct, tokens, cost = [], [], []
    for r in rows:
        assert r.recorded is not None
        e = exit_at(r.recorded, rule)
        correct.append(exact_match(final(e.text), r.item.answers, r.item.task))
        tokens.append(e.prompt_tokens + e.completion_tokens)
        cost.append(
            e.prompt_tokens * think.prices.input_per_token + e.completion_tokens * think.prices.output_per_token
        )
    out[EXIT] = column(correct, tokens, cost)
    return out


def compare(default: dict[str, Any], best: dict[str, Any]) -> dict[str, Any]:
    """The default against the best single tier on the same items: paired intervals."""
    cost = ratio_of_sums(default["_cost"], best["_cost"], RESAMPLES, method="BCa")
    tokens = ratio_of_sums(default["_tokens"], best["_tokens"], RESAMPLES, method="BCa")
    em = mean_difference(default["_correct"], best["_correct"], RESAMPLES)
    assert cost and tokens and em
    half = (best["em_ci"][1] - best["em_ci"][0]) / 2
    return {
        "cost_ratio": cost.as_dict(),
        "token_ratio": tokens.as_dict(),
        "em_difference": em.as_dict(),
        "best_em_ci_half_width": round(half, 3),
        "em_ok": default["em"] >= best["em"] - half,
        "cost_le_1": cost.value <= 1.0,
        "cost_le_0_7": cost.value <= 0.7,
    }


def early_exit_figures(tiers: dict[str, Any]) -> dict[str, Any]:
    full, exiting = tiers[THINK], tiers[EXIT]
    tokens = ratio_of_sums(exiting["_tokens"], full["_tokens"], RESAMPLES, method="BCa")
    em = mean_difference(exiting["_correct"], full["_correct"], RESAMPLES)
    assert tokens and em
    return {
        "n": len(full["_correct"]),
        "full_em": full["em"],
        "exit_em": exiting["em"],
        "token_ratio": tokens.as_dict(),
        "em_difference": em.as_dict(),
        "tokens_cut_30pct": tokens.value <= 0.7,
        "em_within_full_ci": full["em_ci"][0] <= exiting["em"] <= full["em_ci"][1],
    }


def default_column(results: Sequence[CascadeResult], rows: Sequence[ItemOutputs]) -> dict[str, Any]:
    correct = [exact_match(res.answer, r.item.answers, r.item.task) for res, r in zip(results, rows, strict=True)]
    col = column(correct, [res.total_tokens for res in results], [res.total_cost_usd for res in results])
    col["answered_by"] = {t: sum(res.final_tier == t for res in results) for t in TIERS}
    col["called"] = {t: sum(any(a.tier == t for a in res.attempts) for res in results) for t in TIERS}
    exits = [a.early_exit for res in results for a in res.attempts if a.early_exit is not None]
    col["reasoning_exited"] = [sum(e.exited for e in exits), len(exits)]
    return col


def measured(rows: Sequence[ItemOutputs], wanted: Sequence[str]) -> list[str]:
    """The tiers to compare alone: those wanted that are collected on at least half the items the
    default can be run on (the others are reported as not measured, not waited for)."""
    return [t for t in wanted if 2 * sum(t in r.outputs for r in rows) >= len(rows) > 0]


def may_call(cascade: Cascade, query: str) -> tuple[str, ...]:
    """The tiers the default's pre-router lets this query reach."""
    tiers = [t.config for t in cascade.graph.tiers]
    if cascade.pre_router is None:
        return tuple(t.name for t in tiers)
    skip = cascade.pre_router.plan(query, tiers).skip
    return tuple(t.name for t in tiers if t.name not in skip) or (tiers[-1].name,)


async def run_default(cascade: Cascade, rows: Sequence[ItemOutputs]) -> list[CascadeResult | None]:
    """The default on each item; None where it made a request never collected (a budget-lowered
    token cap the collected output went past)."""
    results: list[CascadeResult | None] = []
    for r in rows:
        try:
            results.append(await cascade.arun(r.query))
        except NotCollected:
            results.append(None)
    return results


def family_figures(
    name: str, cascade: Cascade, cache: CachingCompleter, wanted: Sequence[str], rule: EarlyExitConfig, split: str
) -> dict[str, Any]:
    loaded = load(name, split, cache_path=cache.path)
    ready = [r for r in loaded if all(t in r.outputs for t in may_call(cascade, r.query))]
    alone = measured(ready, wanted)
    ran = complete(ready, alone)
    outcomes = asyncio.run(run_default(cascade, ran))
    rows = [r for r, res in zip(ran, outcomes, strict=True) if res is not None]
    results = [res for res in outcomes if res is not None]
    if not rows:
        return {"family": name, "n": 0, "not_collected": len(loaded), "tiers_not_measured": list(wanted)}
    tiers = single_tiers(rows, cascade.config, alone, rule)
    default = default_column(results, rows)
    think = cascade.config.tiers[cascade.config.tier_index(THINK)]
    reasoning = EXIT if think.early_exit is not None and think.early_exit.stop else THINK
    configured = [t for t in (*QUICK, reasoning) if t in tiers]  # the default's tiers, each alone as configured
    best = best_of(tiers, configured)
    figures = {"family": name, "n": len(rows), "not_collected": len(loaded) - len(rows), "best_tier": best}
    figures["default_request_not_collected"] = len(ran) - len(rows)
    figures |= {
        "tiers_alone": list(tiers),
        "tiers_not_measured": [t for t in wanted if t not in alone],
        "tiers": tiers,
        "default": default,
        "vs_best": compare(default, tiers[best]),
    }
    strongest = best_of(tiers, list(tiers))  # also against the full reasoning, where it is the best
    if strongest != best:
        figures["vs_full_reasoning"] = compare(default, tiers[strongest])
    return figures


def early_exit_on(name: str, config: CascadeConfig, rule: EarlyExitConfig, cache: Path, split: str) -> dict[str, Any]:
    """The exit rule against the full reasoning on every item the reasoning tier was collected on
    (whatever else is collected there)."""
    rows = complete(load(name, split, (THINK,), cache), (THINK,))
    if not rows:
        return {"family": name, "n": 0}
    figures = early_exit_figures(single_tiers(rows, config, (THINK,), rule))
    return {"family": name, "rule": rule.model_dump(exclude={"stop"})} | figures


def best_of(tiers: dict[str, Any], names: Sequence[str]) -> str:
    """The most accurate of `names`; the cheaper on a tie."""
    return max(names, key=lambda t: (tiers[t]["em"], -tiers[t]["cost_usd"]))


def public(figures: Any) -> Any:
    """The figures without the per-item lists (kept in the --out file)."""
    if isinstance(figures, dict):
        return {k: public(v) for k, v in figures.items() if not k.startswith("_")}
    return figures


def scorer_calibration(config: CascadeConfig, families: Sequence[str], cache_path: Path) -> dict[str, Any]:
    """The shipped scorer on report items (never trained on): each quick tier after the lower ones,
    per family (pooled over families, the base rates alone would separate right from wrong)."""
    path = (config.verifier.model_extra or {}).get("path") if config.verifier else None
    if not path:
        return {}
    scorer = Scorer.load(resolve_data_path(path, config._source))
    tiers = load_config(COLLECT_CONFIG).tiers
    out: dict[str, Any] = {}
    for family in families:
        rows = complete(load(family, "report", QUICK, cache_path), QUICK)
        held = [e for e in examples(rows, tiers) if e.earlier == full_chain(e.tier)]
        for tier in QUICK if rows else ():
            part = [e for e in held if e.tier == tier]
            probs = scorer.predict_many([e.inp for e in part])
            report = calibration_report(probs, np.array([e.correct for e in part]))
            out.setdefault(family, {})[tier] = {k: v for k, v in report.items() if k != "bins"}
    return out


def paris(config: CascadeConfig, cache: CachingCompleter) -> dict[str, Any]:
    """The one real call (if not cached yet): a factoid the cheapest tier should settle."""
    result = asyncio.run(Cascade(config, completer=cache).arun("What is the capital of France?"))
    return {"answer": result.answer, "final_tier": result.final_tier, "tiers_called": len(result.attempts)}


def recorded_rule() -> EarlyExitConfig:
    """The probing the reasoning tier was collected with (`stop: false`)."""
    collected = load_config(COLLECT_CONFIG)
    rule = collected.tiers[collected.tier_index(THINK)].early_exit
    assert rule is not None
    return rule


def exit_rule(config: CascadeConfig, given: str) -> EarlyExitConfig:
    """The config's exit rule if it has one, else `--exit-rule` (min_prob,agree): the early exit
    is measured against the full reasoning whether the default ships it or not."""
    think = config.tiers[config.tier_index(THINK)]
    if think.early_exit is not None and think.early_exit.stop:
        return think.early_exit
    min_prob, agree = given.split(",")
    return recorded_rule().model_copy(update={"stop": True, "min_prob": float(min_prob), "agree": int(agree)})


def main(args: argparse.Namespace) -> dict[str, Any]:
    config = load_config(args.config)
    cache = CachingCompleter(CacheOnly(), args.cache)
    budgets = {t.max_tokens for t in load_config(COLLECT_CONFIG).tiers}
    cascade = Cascade(config, completer=ReplayedExit(cache, recorded_rule(), budgets))
    started, lines = time.perf_counter(), []
    for name in args.families.split(","):
        wanted = TIERS if name in args.reasoning_families.split(",") else QUICK
        figures = family_figures(name, cascade, cache, wanted, exit_rule(config, args.exit_rule), args.split)
        lines.append(figures)
        print(json.dumps(public(figures)), flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(lines))
    checks = [f["vs_best"] for f in lines if f["n"]]
    live = CachingCompleter(LiteLLMCompleter(), args.cache)
    return {
        "families": [f["family"] for f in lines],
        "n": {f["family"]: f["n"] for f in lines},
        "em_ok": sum(c["em_ok"] for c in checks),
        "cost_le_1": sum(c["cost_le_1"] for c in checks),
        "em_ok_and_cost_le_1": sum(c["em_ok"] and c["cost_le_1"] for c in checks),
        "cost_le_0_7": sum(c["cost_le_0_7"] for c in checks),
        "early_exit": [
            early_exit_on(name, config, exit_rule(config, args.exit_rule), args.cache, args.split)
            for name in args.reasoning_families.split(",")
        ],
        "scorer_on_report_items": scorer_calibration(config, [f["family"] for f in lines], args.cache),
        "capital_of_france": paris(config, live),
        "cache_hits": cache.hits,
        "cache_misses": cache.misses,
        "seconds": round(time.perf_counter() - started, 1),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument(
        "--reasoning-families", default="arithmetic", help="families the reasoning tier alone is compared on"
    )
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "local.yaml")
    parser.add_argument(
        "--exit-rule", default="0.5,1", help="min_prob,agree of the exit rule measured when the config has none"
    )
    parser.add_argument("--split", default="report", help="calibration: to check the mechanics only, never to report")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "local_default.json")
    print(json.dumps(main(parser.parse_args())))
