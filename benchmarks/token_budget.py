"""Token budgets on the local models: the fixed budget against the learned one and a short-then-long ladder.

    python -m benchmarks.token_budget compare [--config configs/local.yaml] [--families arithmetic,...]
        [--dataset FILE] [--limit N] [--scope alone|cascade] [--short 128] [--no-calls] [--cache PATH]
        [--sentence "... {budget} ..."] [--arrangements fixed,learned] [--split calibration]
    python -m benchmarks.token_budget train [--families arithmetic] [--share 0.9] [--write] [--no-calls]
    python -m benchmarks.token_budget plot OUT [OUT ...] --plot FIG.png
    python -m benchmarks.token_budget caps [--split calibration|report] [--limit N] [--no-calls]

`compare` runs the report split of each family (`local_families.py`; never used to train or choose
the budget model) or any file `cascade eval` reads (`--dataset`) through the real engine, item by
item, in four arrangements of the config's budgeted tier T (its first tier with a `learned` policy;
the shipped default has none since its budget lost EM, so its reasoning tier gets the opt-in its
comment shows, `budget_arrangements.OPT_IN_POLICY`):
`fixed` (T's whole `max_tokens`, no budget told: the 384-token reasoning), `learned` (T as the config
has it), `ladder` (`--short` tokens told and capped, then the whole budget if cut off) and
`learned_then_whole` (the learned budget, then the whole if cut off), as the reasoning alone
(`--scope alone`) or behind the config's tiers before T (`cascade`). Reasoning tokens are the
completion tokens of those tiers' attempts. One JSON line per family, then the summary: its
`tokens_ratio` is learned ÷ fixed reasoning tokens and `em_delta` / `em_delta_ci` the paired EM
difference (learned − fixed, bootstrap over items) of the first family. `--sentence` tells T's budget
in other words (a wording to try; choose it with `--split calibration`, then measure it on the report
split); `--arrangements` runs only some (fixed and learned always).

`train` fits the budget model on the families' calibration split: the tokens of each answer the
whole-budget reasoning got right (with and without the lower tiers' attempts as features); `--write`
puts it in the package (`cascade/local/data/default_token_budget.json`). `plot` draws what `compare`
runs printed (their per-family lines): per family and arrangement, tokens and EM against fixed.
`caps` asks what a cap alone could save: the fixed budget's reasoning on the split, cut at each cap
(`support/cap_bound.py`), and what an oracle that stopped every wrong answer at once would save.

Outputs come from the output cache. Under greedy decoding a cap changes nothing but where generation
stops, so a request with a smaller cap is served from the recording at T's `max_tokens` (its first
tokens, `finish_reason: length`); what is not recorded is called once and recorded (`--no-calls`:
left out and counted).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a file too: the repository root
from benchmarks.support.budget_arrangements import (
    ARRANGEMENTS,
    arranged,
    arrangements_of,
    budgeted,
    budgeted_index,
    patient,
    reasoning_tiers,
    told,
    with_sentence,
    with_tiers,
)
from benchmarks.support.cap_bound import cap_table
from benchmarks.support.capped_replay import CappedReplay, NotRecorded, RecordedOnly
from benchmarks.support.local_families import FAMILIES, splits
from cascade import Cascade, load_config
from cascade.completers.litellm_completer import LiteLLMCompleter
from cascade.config.schema import CascadeConfig
from cascade.errors import UserError
from cascade.eval.analysis.stats import Estimate, bootstrap_ci, mean_difference, ratio_of_sums
from cascade.eval.data.formats import load_dataset
from cascade.eval.data.items import Item
from cascade.eval.live.cache import CachingCompleter
from cascade.io.exact_match import exact_match
from cascade.protocols import Completer
from cascade.token_budget.features import budget_features
from cascade.token_budget.train import BudgetExample, fit_budget_model
from cascade.types import Attempt, CascadeResult

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CACHE = Path("/work/cache/local/default.sqlite")
MODEL_PATH = ROOT / "cascade" / "local" / "data" / "default_token_budget.json"
SPLITS = ("calibration", "report")
RESAMPLES = 2000


# --- running and measuring ------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    correct: bool
    reasoning_tokens: int
    cost_usd: float
    truncated: bool
    budgets: tuple[int, ...]


def outcome(result: CascadeResult, item: Item, reasoning: set[str]) -> Outcome:
    attempts = [a for a in result.attempts if a.tier in reasoning]
    return Outcome(
        exact_match(result.answer, item.answers, item.task),
        sum(a.completion_tokens for a in attempts),
        result.total_cost_usd,
        any(a.budget is not None and a.budget.truncated for a in attempts),
        tuple(a.budget.max_tokens for a in attempts if a.budget is not None),
    )


def items_of(args: argparse.Namespace, split: int) -> dict[str, list[tuple[str, Item]]]:
    """(query, item) per family: the families' split (0 calibration, 1 report), or the dataset file
    (shuffled by --seed)."""
    if args.dataset is not None:
        items = load_dataset(args.dataset)
        random.Random(args.seed).shuffle(items)
        return {Path(args.dataset).stem: [(i.prompt, i) for i in items[: args.limit]]}
    out = {}
    for name in args.families.split(","):
        family = FAMILIES[name]
        out[name] = [(family.query(i), i) for i in splits(family)[split][: args.limit]]
    return out


async def run_items(
    cascades: dict[str, tuple[Cascade, set[str]]], rows: Sequence[tuple[str, Item]], label: str
) -> dict[str, list[Outcome]]:
    """Item by item, every arrangement (so a run stopped early is still paired); items an
    arrangement could not answer from the cache under --no-calls are left out of all."""
    runs: dict[str, list[Outcome]] = {a: [] for a in cascades}
    started = time.perf_counter()
    for i, (query, item) in enumerate(rows):
        try:
            got = {a: outcome(await c.arun(query), item, names) for a, (c, names) in cascades.items()}
        except NotRecorded:
            continue
        for a, o in got.items():
            runs[a].append(o)
        tokens = " ".join(f"{a}={o.reasoning_tokens}{'✓' if o.correct else '✗'}" for a, o in got.items())
        print(f"  {label} {i + 1}/{len(rows)} {time.perf_counter() - started:.0f}s {tokens}", file=sys.stderr)
    return runs


def figures(runs: dict[str, list[Outcome]]) -> dict[str, Any]:
    """Per arrangement EM [CI], reasoning tokens, cost; each against fixed, paired."""
    out: dict[str, Any] = {"n": len(runs["fixed"])}
    for name, rows in runs.items():
        correct = np.array([r.correct for r in rows], dtype=float)
        ci = bootstrap_ci(correct, RESAMPLES)
        out[name] = {
            "em": round(float(correct.mean()), 4) if rows else None,
            "em_ci": [round(ci[0], 3), round(ci[1], 3)] if ci else None,
            "reasoning_tokens": int(sum(r.reasoning_tokens for r in rows)),
            "cost_usd": float(sum(r.cost_usd for r in rows)),
            "truncated": int(sum(r.truncated for r in rows)),
            "mean_budget": round(float(np.mean([b for r in rows for b in r.budgets] or [0])), 1),
        }
    fixed = runs["fixed"]
    for name in (a for a in runs if a != "fixed"):
        rows = runs[name]
        tokens = ratio_of_sums([r.reasoning_tokens for r in rows], [r.reasoning_tokens for r in fixed], RESAMPLES)
        cost = ratio_of_sums([r.cost_usd for r in rows], [r.cost_usd for r in fixed], RESAMPLES)
        em = mean_difference([r.correct for r in rows], [r.correct for r in fixed], RESAMPLES)
        out[f"{name}_vs_fixed"] = {
            "tokens_ratio": _estimate(tokens),
            "cost_ratio": _estimate(cost),
            "em_delta": _estimate(em),
        }
    return out


def _estimate(value: Estimate | None) -> dict[str, Any]:
    return dict(value.as_dict()) if value else {"value": None, "ci": None}


def summary(lines: list[dict[str, Any]], config: CascadeConfig, args: argparse.Namespace) -> dict[str, Any]:
    """The headline: the first family, learned against fixed; then every family and arrangement."""
    head = lines[0]
    versus = head["learned_vs_fixed"]
    fixed_ci = head["fixed"]["em_ci"]
    families = {line["family"]: {"n": line["n"]} | {a: _versus(line, a) for a in compared(line)} for line in lines}
    return {
        "benchmark": "token_budget",
        "config": str(args.config),
        "scope": args.scope,
        "budgeted_tier": config.tiers[budgeted_index(config)].name,
        "family": head["family"],
        "n": head["n"],
        "tokens_ratio": versus["tokens_ratio"]["value"],
        "tokens_ratio_ci": versus["tokens_ratio"]["ci"],
        "em_fixed": head["fixed"]["em"],
        "em_fixed_ci": fixed_ci,
        "em_learned": head["learned"]["em"],
        "em_delta": versus["em_delta"]["value"],
        "em_delta_ci": versus["em_delta"]["ci"],
        "em_learned_within_fixed_ci": bool(fixed_ci and fixed_ci[0] <= (head["learned"]["em"] or 0) <= fixed_ci[1]),
        "cost_ratio": versus["cost_ratio"]["value"],
        "families": families,
    }


def compared(line: dict[str, Any]) -> list[str]:
    """The arrangements a printed line compares with fixed."""
    return [a for a in ARRANGEMENTS[1:] if f"{a}_vs_fixed" in line]


def _versus(line: dict[str, Any], arrangement: str) -> dict[str, Any]:
    versus = line[f"{arrangement}_vs_fixed"]
    return {
        "tokens_ratio": versus["tokens_ratio"]["value"],
        "em_delta": versus["em_delta"]["value"],
        "em_delta_ci": versus["em_delta"]["ci"],
    }


def config_of(args: argparse.Namespace) -> CascadeConfig:
    """--config with a learned budget to measure (its own or the opt-in), patient with a loaded machine."""
    return patient(budgeted(load_config(args.config)), args.timeout_s)


def completer_of(config: CascadeConfig, args: argparse.Namespace) -> tuple[CachingCompleter, CappedReplay]:
    cache = CachingCompleter(RecordedOnly() if args.no_calls else LiteLLMCompleter(), args.cache)
    return cache, CappedReplay(cache, config.tiers[budgeted_index(config)].max_tokens)


def compare(args: argparse.Namespace) -> dict[str, Any]:
    config = config_of(args)
    config = with_sentence(config, args.sentence) if args.sentence else config
    cache, completer = completer_of(config, args)
    cascades = {
        a: (
            Cascade(arranged(config, a, args.scope, args.short), completer=completer),
            {t.name for t in reasoning_tiers(config, a, args.short)},
        )
        for a in arrangements_of(args.arrangements)
    }
    started, lines = time.perf_counter(), []
    for family, rows in items_of(args, SPLITS.index(args.split)).items():
        runs = asyncio.run(run_items(cascades, rows, family))
        line = {
            "family": family,
            "scope": args.scope,
            "asked": len(rows),
            "not_recorded": len(rows) - len(runs["fixed"]),
        } | figures(runs)
        lines.append(line)
        print(json.dumps(line), flush=True)
    cache.close()
    told_in = told(config.tiers[budgeted_index(config)])
    result = summary(lines, config, args) | {"split": args.split, "sentence": told_in}
    result |= {"seconds": round(time.perf_counter() - started, 1)}
    return result | {"cache_hits": cache.hits, "cache_misses": cache.misses, "derived_from_longer": completer.derived}


# --- training the budget model ----------------------------------------------------------------


async def examples_of(config: CascadeConfig, completer: Completer, rows: list[tuple[str, Item]]) -> list[BudgetExample]:
    """For every item the whole-budget reasoning got right (not cut off), its tokens: once without
    the lower tiers' attempts as features and once with them (T is reached both ways)."""
    index = budgeted_index(config)
    quick = Cascade(with_tiers(config, config.tiers[:index]), completer=completer) if index else None
    think = Cascade(arranged(config, "fixed", "alone", 0), completer=completer)
    out = []
    for i, (query, item) in enumerate(rows):
        try:
            result = await think.arun(query)
        except NotRecorded:
            continue
        seen: list[list[Attempt]] = [[]]
        with contextlib.suppress(NotRecorded):
            seen += [(await quick.arun(query)).attempts] if quick else []
        attempt = result.attempts[-1]
        if exact_match(result.answer, item.answers, item.task) and not (attempt.budget and attempt.budget.truncated):
            out += [BudgetExample(budget_features(query, p), attempt.completion_tokens, str(i)) for p in seen]
    return out


def train(args: argparse.Namespace) -> dict[str, Any]:
    config = config_of(args)
    cache, completer = completer_of(config, args)
    rows = [row for family_rows in items_of(args, 0).values() for row in family_rows]
    data = asyncio.run(examples_of(config, completer, rows))
    cache.close()
    training = {"version": "1", "families": args.families.split(","), "split": "calibration", "items": len(rows)}
    training |= {"made_by": "benchmarks/token_budget.py train --write"}
    model = fit_budget_model(data, share=args.share, seed=args.seed, training=training)
    if args.write:
        model.save(MODEL_PATH)
    coefficients = dict(zip(model.names, np.round(model.coef, 4).tolist(), strict=True))
    return {"benchmark": "token_budget train", "n_items": len(rows), "n_examples": len(data)} | {
        "model_report": model.report,
        "coefficients": {k: v for k, v in coefficients.items() if v},
        "written": str(MODEL_PATH) if args.write else None,
    }


# --- the figure ------------------------------------------------------------------------------------


def plot(args: argparse.Namespace) -> dict[str, Any]:
    """Per family (the JSON lines `compare` printed, from any number of runs) and arrangement: the
    reasoning tokens and the EM against the fixed budget, each with its paired 95% interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = [json.loads(t) for f in args.inputs for t in Path(f).read_text().splitlines() if t.startswith('{"family"')]
    rows = [
        (f"{line['family']}, {line.get('scope', 'alone')}, n={line['n']}: {a}", line[f"{a}_vs_fixed"])
        for line in lines
        for a in compared(line)
    ]
    fig, (tokens, em) = plt.subplots(1, 2, figsize=(11, 0.45 * len(rows) + 1.5), sharey=True)
    for axis, key, target, title in (
        (tokens, "tokens_ratio", 0.75, "reasoning tokens ÷ fixed 384-token budget"),
        (em, "em_delta", 0.0, "EM − fixed EM (paired, share of items)"),
    ):
        for y, (_, versus) in enumerate(rows):
            value, ci = versus[key]["value"], versus[key]["ci"] or [versus[key]["value"]] * 2
            axis.errorbar(value, y, xerr=[[value - ci[0]], [ci[1] - value]], fmt="o", color="C0", capsize=3)
        axis.axvline(target, color="grey", linestyle="--", linewidth=1)
        axis.set_title(title, fontsize=10)
    tokens.set_yticks(range(len(rows)), [label for label, _ in rows], fontsize=8)
    tokens.invert_yaxis()
    fig.tight_layout()
    fig.savefig(args.plot, dpi=120)
    return {"benchmark": "token_budget plot", "plot": str(args.plot), "rows": len(rows)}


def caps(args: argparse.Namespace) -> dict[str, Any]:
    """What a cap alone could save on the split: the fixed budget's reasoning, cut at each cap."""
    config = config_of(args)
    cache, completer = completer_of(config, args)
    fixed = {
        "fixed": (
            Cascade(arranged(config, "fixed", "alone", 0), completer=completer),
            {config.tiers[budgeted_index(config)].name},
        )
    }
    out: dict[str, Any] = {"benchmark": "token_budget caps", "split": args.split}
    for family, rows in items_of(args, SPLITS.index(args.split)).items():
        runs = asyncio.run(run_items(fixed, rows, family))["fixed"]
        out[family] = cap_table([r.reasoning_tokens for r in runs], [r.correct for r in runs])
    cache.close()
    return out


COMMANDS = {"compare": compare, "train": train, "plot": plot, "caps": caps}


def parser() -> argparse.ArgumentParser:
    out = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    out.add_argument("command", choices=tuple(COMMANDS), nargs="?", default="compare")
    out.add_argument("inputs", nargs="*", help="plot: files holding what compare printed")
    out.add_argument("--config", type=Path, default=ROOT / "configs" / "local.yaml")
    out.add_argument("--families", default="arithmetic", help=f"of {', '.join(FAMILIES)}")
    out.add_argument("--dataset", type=Path, help="compare: any file `cascade eval` reads, instead of --families")
    out.add_argument("--limit", type=int, default=None, help="the first N items of each family (or of --dataset)")
    out.add_argument("--seed", type=int, default=0, help="shuffles --dataset; folds of train")
    out.add_argument(
        "--scope", choices=("alone", "cascade"), default="alone", help="compare: T alone or behind its lower tiers"
    )
    out.add_argument("--split", choices=SPLITS, default="report", help="compare, caps: the families' split run")
    out.add_argument("--sentence", help="compare: T's budget told in these words (with {budget}) instead")
    out.add_argument("--arrangements", default=",".join(ARRANGEMENTS), help="compare: which (fixed, learned always)")
    out.add_argument("--short", type=int, default=128, help="compare: the ladder's first budget (tokens)")
    out.add_argument("--share", type=float, default=0.9, help="train: the share of correct answers that must fit")
    out.add_argument("--write", action="store_true", help="train: write the model into the package")
    out.add_argument("--plot", type=Path, default=Path("token_budget.png"), help="plot: the PNG to write")
    out.add_argument("--no-calls", action="store_true", help="only what the output cache holds")
    out.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    out.add_argument("--timeout-s", type=float, default=3600.0, help="per model call (the config's is for users)")
    return out


if __name__ == "__main__":
    arguments = parser().parse_args()
    try:
        print(json.dumps(COMMANDS[arguments.command](arguments)))
    except UserError as error:  # a config or an option that cannot run: say which, no traceback
        print(f"token_budget: {error}", file=sys.stderr)
        sys.exit(2)
