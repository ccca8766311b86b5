"""Calibrate the local default on calibration items only: its scorer, exit rule and skip policy.

    python -m benchmarks.local_calibrate [--write] [--out benchmarks/out/local_calibrate.json]

Reads every tier's outputs on each family's calibration split from the output cache (no model
call; `local_collect.py` fills it). Then:

1. the early-exit rule of the reasoning tier: the one that saves the most reasoning tokens on the
   arithmetic calibration items among those whose EM loss against the full reasoning is provably
   (one-sided 95% bound) at most `--exit-slack`; none qualifying, the default reasons in full;
2. the scorer: P(correct) of a quick tier's answer from features that carry across question types
   (`local_scoring.TRANSFERABLE`), judged family by family by a scorer trained on the other five
   (leave one family out);
3. the policy: global acceptance thresholds and, per detected question type, the quick tiers worth
   calling (out-of-fold probabilities), also judged leave-one-family-out; the reasoning tier is
   added for the types where, on calibration items, it was more accurate than the best quick
   answer (the last quick tier then keeps its answer when its P(correct) is at least the
   reasoning's EM there).

With `--write`, the scorer trained on all six families goes to the package
(`cascade/local/data/default_scorer.json`, with its leave-one-family-out report) and the policy is
printed as the YAML to put in `configs/local.yaml`. Last line: one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import beta

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a file too: the repository root
from benchmarks.support.local_families import FAMILIES
from benchmarks.support.local_outputs import (
    COLLECT_CONFIG,
    QUICK,
    THINK,
    TIERS,
    Exit,
    ItemOutputs,
    complete,
    exit_at,
    load,
)
from benchmarks.support.local_policy import Policy, Subset, Table, replay, search, summary
from benchmarks.support.local_scoring import Example, cross_fitted, examples, fit, leave_one_family_out
from cascade import load_config
from cascade.config.schema import EarlyExitConfig
from cascade.io.answers import final
from cascade.io.exact_match import exact_match
from cascade.io.features import task_of

ROOT = Path(__file__).resolve().parents[1]
SCORER_PATH = ROOT / "cascade" / "local" / "data" / "default_scorer.json"
SCORER_VERSION = "1"  # bump when the shipped scorer is retrained
EXIT_GRID = [(p, a) for p in (0.5, 0.6, 0.7, 0.8, 0.9, 0.95) for a in (1, 2, 3)]


def exit_rule(rows: Sequence[ItemOutputs], base: EarlyExitConfig, slack: float) -> tuple[EarlyExitConfig, list]:
    """The rule with the fewest reasoning tokens that provably costs at most `slack` EM: the
    one-sided 95% Clopper-Pearson upper bound of its loss rate (items the full reasoning got right
    and the exit got wrong) is at most `slack`. None qualifying: no early exit (`stop: false`)."""
    recorded = [(r, r.recorded) for r in rows if r.recorded is not None]
    full = [r.outputs[THINK].correct for r, _ in recorded]
    full_tokens = sum(r.outputs[THINK].tokens for r, _ in recorded)
    table = []
    for min_prob, agree in EXIT_GRID:
        rule = base.model_copy(update={"min_prob": min_prob, "agree": agree, "stop": True})
        exits = [(r, exit_at(c, rule)) for r, c in recorded]
        right = [exact_match(final(e.text), r.item.answers, r.item.task) for r, e in exits]
        lost = sum(f and not x for f, x in zip(full, right, strict=True))
        tokens = sum(e.prompt_tokens + e.completion_tokens for _, e in exits)
        bound = float(beta.ppf(0.95, lost + 1, len(full) - lost)) if lost < len(full) else 1.0
        row = {"min_prob": min_prob, "agree": agree, "em": float(np.mean(right)), "lost": lost}
        table.append(row | {"loss_rate_upper_95": bound, "token_ratio": tokens / full_tokens})
    table.append({"full_reasoning_em": float(np.mean(full)), "full_reasoning_tokens": full_tokens, "n": len(full)})
    ok = [t for t in table[:-1] if t["loss_rate_upper_95"] <= slack and t["token_ratio"] < 1.0]
    if not ok:
        return base.model_copy(update={"stop": False}), table
    best = min(ok, key=lambda t: t["token_ratio"])
    return base.model_copy(update={"stop": True, "min_prob": best["min_prob"], "agree": best["agree"]}), table


def reasoning_pays(
    rows: Sequence[ItemOutputs], rule: EarlyExitConfig, price: tuple[float, float], min_items: int
) -> dict[str, dict[str, Any]]:
    """Per question type with reasoning outputs: the reasoning tier (with `rule`) against the best
    quick answer on the same calibration items; it pays where it is more accurate."""
    out: dict[str, dict[str, Any]] = {}
    by_type: dict[str, list[ItemOutputs]] = {}
    for r in rows:
        if r.recorded is not None:
            by_type.setdefault(task_of(r.query), []).append(r)
    for task, items in sorted(by_type.items()):
        exits = [reasoning_of(r, rule) for r in items]
        think = [exact_match(final(e.text), r.item.answers, r.item.task) for e, r in zip(exits, items, strict=True)]
        quick = {t: float(np.mean([r.outputs[t].correct for r in items])) for t in QUICK}
        best = max(quick, key=lambda t: quick[t])
        em = float(np.mean(think))
        cost = float(np.mean([e.prompt_tokens * price[0] + e.completion_tokens * price[1] for e in exits]))
        out[task] = {"n": len(items), "reasoning_em": em, "reasoning_cost": cost, "best_quick": best}
        out[task] |= {"best_quick_em": quick[best]}
        out[task]["pays"] = len(items) >= min_items and em > quick[best]
    return out


def table_of(rows: Sequence[ItemOutputs], data: Sequence[Example], probs: np.ndarray) -> Table:
    """The quick tiers' correctness, cost and out-of-fold P(correct) on `rows`."""
    keys = [f"{r.family}/{r.item.id}" for r in rows]
    index = {k: i for i, k in enumerate(keys)}
    correct = {t: np.array([r.outputs[t].correct for r in rows]) for t in QUICK}
    cost = {t: np.array([r.outputs[t].cost_usd for r in rows]) for t in QUICK}
    table = Table(np.array([r.family for r in rows]), np.array([task_of(r.query) for r in rows]), correct, cost)
    for e, p in zip(data, probs, strict=True):
        if e.key in index and e.tier in QUICK:
            table.p.setdefault((e.tier, e.earlier), np.full(len(rows), np.nan))[index[e.key]] = p
    return table


def policy_lofo(quick: Sequence[ItemOutputs], data: Sequence[Example], slack: float) -> dict[str, Any]:
    """For each family: scorer and policy learned on the other five families only, applied to it."""
    out = {}
    for family in FAMILIES:
        train = [e for e in data if e.family != family]
        held = [e for e in data if e.family == family]
        probs = np.zeros(len(data))
        probs[[i for i, e in enumerate(data) if e.family != family]] = cross_fitted(train)
        probs[[i for i, e in enumerate(data) if e.family == family]] = fit(train).predict_many([e.inp for e in held])
        table = table_of(quick, data, probs)
        policy = search(table.where(table.family != family), slack)
        tasks = table.task[table.family == family]
        main_type = max(set(tasks.tolist()), key=tasks.tolist().count)
        out[family] = summary(table, policy, family) | {"type": main_type, "tiers": list(policy.tiers_for(main_type))}
    return out


def reasoning_of(row: ItemOutputs, rule: EarlyExitConfig) -> Exit:
    """The reasoning tier's run on an item: with the exit rule replayed, or without probing."""
    assert row.recorded is not None
    if rule.stop:
        return exit_at(row.recorded, rule)
    full = row.outputs[THINK].completion
    return Exit(full.text, full.prompt_tokens, full.completion_tokens, exited=False, probes=0)


def with_reasoning(
    policy: Policy, pays: dict[str, dict[str, Any]], table: Table
) -> tuple[dict[str, Subset], float | None]:
    """Each type's tiers, the reasoning tier last where it pays; and the last quick tier's threshold
    there: the reasoning's calibration EM, so a quick answer is kept when it is likelier right.

    Quick tiers stay in front of the reasoning only if what they settle saves more than they cost
    (on the type's calibration items, against the reasoning's mean cost): else reasoning alone."""
    per_type = {task: tuple(tiers) for task, tiers in policy.per_type.items()}
    paying = [task for task, figures in pays.items() if figures["pays"]]
    last_quick = round(min(pays[task]["reasoning_em"] for task in paying), 2) if paying else None
    thresholds = policy.thresholds | {QUICK[-1]: last_quick or 1.01}
    for task in paying:
        chain = (*per_type.get(task, policy.fallback), THINK)
        part = table.where(table.task == task)
        think_cost = pays[task]["reasoning_cost"]
        part.correct[THINK], part.cost[THINK] = np.zeros(len(part.task), bool), np.full(len(part.task), think_cost)
        _, cost = replay(part, chain, thresholds)
        pays[task]["quick_first_cost_ratio"] = float(cost.mean() / think_cost)
        per_type[task] = chain if cost.mean() <= think_cost else (THINK,)
    return per_type, last_quick


def policy_yaml(policy: Policy, per_type: dict[str, Subset], last_quick: float | None, table: Table) -> str:
    """The policy as `configs/local.yaml` writes it: thresholds, and a skip rule per question type."""
    thresholds = dict(policy.thresholds) | ({QUICK[-1]: last_quick} if last_quick is not None else {})
    lines = ["router:", "  type: threshold", "  per_tier:"]
    lines += [f"    {tier}: {value}" for tier, value in thresholds.items()]
    lines += ["pre_router:", "  type: features", "  rules:"]
    for task, tiers in sorted(per_type.items()):
        skip = [t for t in TIERS if t not in tiers]
        n = int((table.task == task).sum())
        lines += [f"    - when: {{task: {task}}}", f"      skip: [{', '.join(skip)}]"]
        lines += [f'      why: "on {n} calibration {task} questions, {", ".join(tiers)} paid for themselves"']
    skip = [t for t in TIERS if t not in policy.fallback]
    lines += ["    - skip: [" + ", ".join(skip) + "]", '      why: "question type without calibration data"']
    return "\n".join(lines)


def main(args: argparse.Namespace) -> dict[str, Any]:
    config = load_config(COLLECT_CONFIG)
    rows = {f: load(f, "calibration") for f in FAMILIES}
    quick = [r for f in FAMILIES for r in complete(rows[f], QUICK)]
    think = config.tiers[config.tier_index(THINK)]
    assert think.early_exit is not None
    recorded = [r for r in quick if r.recorded is not None and r.family == "arithmetic"]
    rule, exit_table = exit_rule(recorded, think.early_exit, args.exit_slack)
    assert think.prices is not None
    price = (think.prices.input_per_token, think.prices.output_per_token)
    pays = reasoning_pays(quick, rule, price, args.min_reasoning_items)
    data = examples(quick, config.tiers)
    table = table_of(quick, data, cross_fitted(data))
    policy = search(table, args.slack)
    per_type, last_quick = with_reasoning(policy, pays, table)
    figures: dict[str, Any] = {
        "n_items": {f: [len(complete(rows[f], QUICK)), len(complete(rows[f], TIERS))] for f in FAMILIES},
        "exit_rule": rule.model_dump(),
        "exit_grid": exit_table,
        "reasoning_pays": pays,
        "scorer_lofo": leave_one_family_out(data),
        "policy": {"thresholds": policy.thresholds, "per_type": per_type, "fallback": policy.fallback},
        "last_quick_threshold": last_quick,
        "policy_in_sample": {f: summary(table, policy, f) for f in np.unique(table.family).tolist()},
        "policy_lofo": policy_lofo(quick, data, args.slack),
    }
    if args.write:
        training = {"version": SCORER_VERSION, "families": list(FAMILIES), "split": "calibration"}
        training |= {"collect_config": COLLECT_CONFIG.name, "made_by": "benchmarks/local_calibrate.py --write"}
        report = {"leave_one_family_out": figures["scorer_lofo"]}
        replace(fit(data, training), report=report).save(SCORER_PATH)
        print(policy_yaml(policy, per_type, last_quick, table))
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slack", type=float, default=0.02)
    parser.add_argument("--exit-slack", type=float, default=0.1, help="largest provable EM loss of the exit rule")
    parser.add_argument("--min-reasoning-items", type=int, default=20)
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "local_calibrate.json")
    args = parser.parse_args()
    result = main(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=str))
    print(json.dumps(result, default=str))
