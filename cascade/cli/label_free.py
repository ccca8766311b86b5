"""`cascade tune --config C --dataset PROMPTS --reference strongest --min-agreement A`: tuning on a team's
own prompts without gold answers (a dataset's answers, if it has any, are not read).

It says what calling every tier on every prompt may cost before the first call, stops before
`--max-cost-usd` would be passed, shows progress, and reports the choice on held-out prompts as
agreement with the reference tier, with paired bootstrap intervals.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cascade.cli.tune_logs import label_free_settings, print_summary, tune_report
from cascade.completers.plugins import make_completer
from cascade.config import safe_yaml
from cascade.config.schema import load_config
from cascade.errors import UserError
from cascade.eval.analysis.tables import WIDTH
from cascade.eval.analysis.verdict import vs_strongest
from cascade.eval.data.formats import load_dataset
from cascade.eval.data.items import Item, split
from cascade.eval.data.logs import TierLog
from cascade.eval.live.cache import CachingCompleter
from cascade.eval.live.runner import cache_path_for, run_tiers_alone
from cascade.eval.live.spend import SpendCap, SpendCapReached, estimate_spend
from cascade.optimize.live_tune import tuned_yaml
from cascade.optimize.prompts import Prompts, agreement_form, answered, chosen_tiers, held_out, reference_tier, search
from cascade.optimize.tuner import TuneResult
from cascade.run.engine import Cascade


def load_prompts(args: argparse.Namespace) -> list[Item]:
    """The dataset's prompts (its answers dropped), shuffled by the seed, after `--offset`, up to `--limit`."""
    items = load_dataset(args.dataset, args.format, question_field=args.question_field, gold=False)
    random.Random(args.seed).shuffle(items)
    items = items[args.offset :]
    return items[: args.limit] if args.limit else items


def run_tune_prompts(args: argparse.Namespace) -> int:
    settings = label_free_settings(args)
    config = load_config(args.config)
    reference = reference_tier(config, args.reference)
    items = load_prompts(args)
    tune_items, test_items = split(items, [args.tune_fraction, 1 - args.tune_fraction], seed=args.seed)
    cap = SpendCap(make_completer(config), args.max_cost_usd)
    cache = CachingCompleter(cap, args.cache or cache_path_for(config._source, args.dataset))
    cascade = Cascade(config, completer=cache)
    console = Console()
    if not console.is_terminal:
        console.width = WIDTH  # a file or a pipe gets whole tier names
    ordered = tune_items + test_items
    console.print(
        f"Calling each of {len(config.tiers)} tiers on {len(ordered)} prompts: "
        + _estimate(cascade, ordered, args, cache)
    )
    with _stopped_at_the_cap():
        rows = asyncio.run(_collect(cascade, ordered, args, cap))
        everything = Prompts(ordered, rows, reference, agreement_form(config, args.task))
        tuning, unanswered = answered(everything.subset(range(len(tune_items))))
        testing, _ = answered(everything.subset(range(len(tune_items), len(ordered))))
        result = asyncio.run(search(config, cache, tuning, settings, args.template))
        outcome = asyncio.run(held_out(config, cache, testing, result.chosen, template=args.template))
    console.print(f"spent ${cap.spent:.4g} on {cap.calls} model call(s); {cache.hits} answered from the output cache")
    if unanswered:
        console.print(f"{unanswered} tuning prompt(s) left out: '{reference}' gave no answer to agree with")
    _report(args, result, held_out_figures(*outcome, seed=args.seed), console)
    return 0


def _report(args: argparse.Namespace, result: TuneResult, figures: dict[str, Any], console: Console) -> None:
    """The choice on the tuning prompts and on the held-out ones; the written config and JSON report."""
    print_summary(result, console, source="cascade tune --dataset")
    console.print(held_out_line(result, figures))
    if args.write:
        args.write.parent.mkdir(parents=True, exist_ok=True)
        body = yaml.safe_dump(_tuned(args, result), sort_keys=False, allow_unicode=True)
        args.write.write_text(_header(args, result, figures) + body, encoding="utf-8")
        console.print(f"tuned config: {args.write}")
    if args.out:
        report = {**tune_report(result, [str(args.dataset)]), "held_out": figures}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        console.print(f"report: {args.out}")


def _estimate(cascade: Cascade, items: list[Item], args: argparse.Namespace, cache: CachingCompleter) -> str:
    text = estimate_spend(cascade, items, args.template, cache).describe()
    cap = args.max_cost_usd
    return text + (f"; capped at ${cap:g} (--max-cost-usd)" if cap is not None else "; no cap (--max-cost-usd)")


@contextmanager
def _stopped_at_the_cap() -> Iterator[None]:
    """Reaching the cap is the user's limit, not a failure: a clean message, exit code 2."""
    try:
        yield
    except SpendCapReached as exc:
        raise UserError(str(exc)) from None


async def _collect(
    cascade: Cascade, items: list[Item], args: argparse.Namespace, cap: SpendCap
) -> list[dict[str, TierLog]]:
    columns = (
        TextColumn("{task.description:>16}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[spent]}"),
    )
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        tasks = {t.name: bar.add_task(t.name, total=len(items), spent="") for t in cascade.config.tiers}

        def advance(stage: str, n: int) -> None:
            bar.update(tasks[stage], advance=n, spent=f"${cap.spent:.4g} spent")

        return await run_tiers_alone(
            cascade, items, template=args.template, concurrency=args.concurrency, progress=advance
        )


def held_out_figures(agreement: np.ndarray, cost: np.ndarray, reference_cost: np.ndarray, seed: int) -> dict[str, Any]:
    """Agreement with the reference and cost against it alone on held-out prompts, paired bootstrap 95%."""
    if not agreement.size:
        return {"n": 0, "agreement": {"value": None, "ci": None}, "cost_ratio": {"value": None, "ci": None}}
    paired = vs_strongest(agreement, cost, np.ones_like(agreement), reference_cost, seed)
    delta, ratio = paired["em_delta_vs_strongest"], paired["cost_ratio_vs_strongest"]
    shifted = None if delta["ci"] is None else [1.0 + delta["ci"][0], 1.0 + delta["ci"][1]]
    return {
        "n": int(agreement.size),
        "agreement": {"value": float(agreement.mean()), "ci": shifted},
        "cost_ratio": {"value": ratio["value"], "ci": ratio["ci"]},
    }


def held_out_line(result: TuneResult, figures: dict[str, Any]) -> str:
    def ci(entry: dict[str, Any]) -> str:
        return "" if entry["ci"] is None else f" [{entry['ci'][0]:.3f}, {entry['ci'][1]:.3f}]"

    agreement, ratio = figures["agreement"], figures["cost_ratio"]
    if agreement["value"] is None:
        return "no held-out prompts: raise the share not used for tuning (--tune-fraction)"
    return (
        f"held out ({figures['n']} prompts never tuned on): {result.measure} {agreement['value']:.3f}{ci(agreement)}, "
        f"cost {ratio['value']:.3f}x{ci(ratio)} of '{result.strongest}' alone (paired bootstrap 95%)"
    )


def _tuned(args: argparse.Namespace, result: TuneResult) -> dict[str, Any]:
    tiers, thresholds = chosen_tiers(result.chosen)
    return tuned_yaml(safe_yaml.load(args.config).data, tiers, thresholds)


def _header(args: argparse.Namespace, result: TuneResult, figures: dict[str, Any]) -> str:
    objective = result.settings.objective
    tiers, thresholds = chosen_tiers(result.chosen)
    lines = [
        f"Tuned without gold answers on {len(result.log)} prompts of {args.dataset.name} (seed {args.seed}):",
        f"an answer counts as right when it agrees with tier '{result.strongest}' (the reference).",
        f"Objective: the cheapest cascade whose {result.measure} has a one-sided {objective.confidence:.0%} lower "
        f"bound >= {1 - objective.tolerance:g} ({result.selection.describe()}) "
        f"and that saves >= {objective.min_saving:.0%} of its cost.",
    ]
    if result.pays:
        lines.append(
            f"Chosen: {' → '.join(tiers)}, thresholds {thresholds}: {result.measure} {result.chosen.em:.3f} "
            f"(lower bound {1 + result.selection.bound(result.chosen):.3f}), cost {result.chosen.ratio:.2f}x, "
            "on the tuning prompts."
        )
    else:
        lines.append(f"No cascade pays on these prompts: this config is '{result.strongest}' alone.")
    lines.append(held_out_line(result, figures))
    lines.append(f"Made by: {command_of(args)}")
    return "".join(f"# {line}\n" for line in lines)


def command_of(args: argparse.Namespace) -> str:
    """The command that reproduces this tuning (the output cache makes a rerun call no model)."""
    parts = ["cascade tune", f"--config {shlex.quote(str(args.config))}", f"--dataset {shlex.quote(str(args.dataset))}"]
    parts += [f"--reference {shlex.quote(args.reference)}", f"--min-agreement {args.min_agreement:g}"]
    optional = {
        "--task": args.task,
        "--template": args.template,
        "--limit": args.limit,
        "--offset": args.offset or None,
    }
    parts += [f"{flag} {shlex.quote(str(value))}" for flag, value in optional.items() if value is not None]
    parts += [f"--tune-fraction {args.tune_fraction:g}", f"--folds {args.folds}", f"--seed {args.seed}"]
    parts += [f"--confidence {args.confidence:g}", f"--selection {args.selection}"]
    return " ".join(parts)
