"""`cascade tune --logs LOG [--logs LOG ...]`: the optimizer on the command line.

Reads the logs (items of several logs of the same models are pooled), searches, prints the choice
next to the strongest model alone, writes the runnable YAML and its scorer (`--write`), and the
tuning report as JSON (`--out`), including the scorer's calibration on out-of-fold predictions.
"""

from __future__ import annotations

import argparse
import json
import shlex
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from cascade.cli.log_options import log_options, model_map
from cascade.errors import UserError
from cascade.eval.analysis.tables import WIDTH
from cascade.eval.data.external import LogOptions
from cascade.eval.data.formats import read_log
from cascade.eval.data.logs import LogTable
from cascade.optimize.select import Objective, Summary
from cascade.optimize.tolerances import vote_notes
from cascade.optimize.tuner import Settings, TuneResult, tune


def read_logs(paths: list[Path], fmt: str | None, options: LogOptions) -> LogTable:
    """One table from several logs: their common models, every item (ids prefixed when pooled)."""
    tables = [read_log(p, fmt, **options) for p in paths]
    if len(tables) == 1:
        return tables[0]
    models = [m for m in tables[0].models if all(m in t.models for t in tables[1:])]
    if len(models) < 2:
        raise UserError("the logs share fewer than two models; tune them one at a time")
    items = []
    for k, table in enumerate(tables):
        for item in table.select(models).items:
            items.append(replace(item, id=f"{k}:{item.id}"))
    notes = [note for t in tables for note in t.notes]
    source = " + ".join(str(p) for p in paths)
    return LogTable(models, items, source, tables[0].fmt, notes, sum(t.excluded for t in tables), True)


def task_of(log: LogTable) -> str:
    """The one answer format of the log's items (a tuned config has one per tier)."""
    tasks = sorted({item.task for item in log.items})
    if len(tasks) != 1:
        raise UserError(f"the logs mix answer formats {tasks}; tune one kind of task per config")
    return tasks[0]


def settings_of(args: argparse.Namespace) -> Settings:
    if args.min_em_of_strongest == (args.value_per_correct is not None):
        raise UserError("tune --logs needs one objective: --min-em-of-strongest or --value-per-correct")
    if args.min_em_of_strongest:
        objective = Objective("tolerance", args.tolerance, 0.0, args.confidence, args.min_saving)
    else:
        objective = Objective("value", args.tolerance, args.value_per_correct, args.confidence, args.min_saving)
    return Settings(objective=objective, folds=args.folds, seed=args.seed)


def run_tune_logs(args: argparse.Namespace) -> int:
    from cascade.config.schema import AnswerConfig
    from cascade.io.answers import extractor
    from cascade.optimize.writer import answer_format, write

    options = log_options(args)
    names = model_map(args.model_map)
    settings = settings_of(args)
    log = read_logs(args.logs, args.format, options)
    task = task_of(log)
    console = Console()
    if not console.is_terminal:
        console.width = WIDTH  # a file or a pipe gets whole model names
    result = tune(log, extractor(AnswerConfig(format=answer_format(task))), settings)
    print_summary(result, console)
    if result.looser:
        print_looser(result, console, lambda tolerance: command_of(args, tolerance=tolerance))
    sources = [p.name for p in args.logs]
    if args.write:
        files = write(result, args.write, task=task, sources=sources, model_map=names, command=command_of(args))
        validate(args.write)
        console.print("written: " + ", ".join(str(f) for f in files))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(tune_report(result, sources), indent=2) + "\n", encoding="utf-8")
        console.print(f"report: {args.out}")
    return 0


def command_of(args: argparse.Namespace, *, tolerance: float | None = None) -> str:
    """The command that reproduces this tuning (what the written config's header shows), or the same
    at another `tolerance` (what to run next when nothing pays)."""
    parts = ["cascade", "tune", *(f"--logs {shlex.quote(str(p))}" for p in args.logs)]
    objective = settings_of(args).objective
    if objective.kind == "tolerance":
        parts += ["--min-em-of-strongest", f"--tolerance {objective.tolerance if tolerance is None else tolerance:g}"]
    else:
        parts.append(f"--value-per-correct {objective.value_per_correct:g}")
    parts += [f"--confidence {objective.confidence:g}", f"--min-saving {objective.min_saving:g}"]
    parts += [f"--folds {args.folds}", f"--seed {args.seed}"]
    parts += [f"--format {args.format}"] if args.format else []
    parts += [f"--model-map {shlex.quote(m)}" for m in args.model_map]
    parts += [f"--price {shlex.quote(p)}" for p in args.price]
    parts += [f"--prompt-overhead-tokens {args.prompt_overhead_tokens}"] if args.prompt_overhead_tokens else []
    parts += ["--keep-contaminated"] if args.keep_contaminated else []
    parts += [f"--write {shlex.quote(str(args.write or 'tuned.yaml'))}"]
    return " ".join(parts)


def validate(path: Path) -> None:
    """The written config loads and its verifiers build (the scorer file is found and fits the tiers)."""
    from cascade.config.schema import load_config
    from cascade.registry import BuildContext
    from cascade.run.tier_verifiers import tier_verifiers
    from cascade.store.access import StoreAccess

    config = load_config(path)
    tier_verifiers(config, BuildContext(config, stores=StoreAccess(), learn_on_build=False))


def summary_dict(s: Summary) -> dict[str, Any]:
    return {
        "cascade": s.structure.label(),
        "tiers": [{"name": t.name, "models": list(t.models)} for t in s.structure.specs],
        "verifiers": [g.verifier for g in s.structure.gates],
        "thresholds": list(s.thresholds),
        "em": s.em,
        "cost_usd": s.cost,
        "cost_ratio": s.ratio,
        "em_delta": s.diff,
        "em_delta_lower_bound": s.lcb,
        "net_benefit_per_item": s.benefit,
    }


def tune_report(result: TuneResult, sources: list[str]) -> dict[str, Any]:
    objective = result.settings.objective
    return {
        "sources": sources,
        "n_items": len(result.log),
        "excluded_items": result.log.excluded,
        "strongest": result.strongest,
        "objective": objective.__dict__,
        "settings": {"folds": result.settings.folds, "seed": result.settings.seed, "candidates": result.considered},
        "pays": result.pays,
        "selection_optimism": result.optimism,
        "chosen": summary_dict(result.chosen),
        "reference": summary_dict(result.reference),
        "alternatives": [summary_dict(s) for s in result.alternatives],
        "looser_tolerances": [point.as_dict() for point in result.looser],
        "scorer": result.scorer.report if result.scorer else None,
        "note": "figures on the tuning items; judge the config on other items with `cascade replay --config`",
    }


def print_summary(result: TuneResult, console: Console) -> None:
    table = Table(title=f"cascade tune --logs: {len(result.log)} tuning items", title_justify="left")
    for column in ("", "cascade", "EM", "Δ EM (lower bound)", "cost × strongest", "thresholds"):
        table.add_column(column, justify="left" if column in ("", "cascade") else "right", overflow="fold")
    rows = [("strongest alone", result.reference, ""), ("chosen", result.chosen, "bold green")]
    rows += [("alternative", s, "dim") for s in result.alternatives[:5]]
    for label, s, style in rows:
        thresholds = ", ".join(f"{t:.4g}" for t in s.thresholds) or "—"
        delta = f"{s.diff:+.3f} ({s.lcb:+.3f})"
        cascade = Text(s.structure.label())  # its "[vote]" is no markup
        table.add_row(label, cascade, f"{s.em:.3f}", delta, f"{s.ratio:.3f}", thresholds, style=style)
    console.print(table)
    for note in vote_notes(result.chosen):
        console.print(note)
    if result.optimism > 0:
        console.print(
            f"Selection margin: {100 * result.optimism:.2f} points off every lower bound (the best-looking of "
            f"{result.considered} candidates is flattered by the choice; bootstrap estimate)."
        )
    if not result.pays:
        tolerance = result.settings.objective.tolerance
        console.print(
            "[bold]No cascade pays on these items[/]: the config is the strongest model alone "
            f"(none has a lower bound, less the margin, of at least -{tolerance:g} while saving enough)."
        )


def print_looser(result: TuneResult, console: Console, command: Callable[[float], str]) -> None:
    """What each looser tolerance would choose (its bound less that choice's selection margin), and
    the exact command to run next."""
    table = Table(title="What each tolerance would buy on these items", title_justify="left")
    for column in ("tolerance", "cascade", "cost × strongest", "Δ EM", "bound"):
        table.add_column(column, justify="left" if column == "cascade" else "right", overflow="fold")
    for point in result.looser:
        s = point.chosen
        if s is None:
            table.add_row(f"{point.tolerance:g}", "the strongest model alone", "1.000", "—", "—", style="dim")
        else:
            figures = (f"{s.ratio:.3f}", f"{s.diff:+.3f}", f"{s.lcb - point.optimism:+.3f}")
            table.add_row(f"{point.tolerance:g}", Text(s.structure.label()), *figures)
    console.print(table)
    asked = result.settings.objective.tolerance
    paying = [p for p in result.looser if p.chosen is not None and p.tolerance > asked]
    if paying:
        console.print(f"Next, to accept an EM loss of up to {paying[0].tolerance:g} (its bound, less the margin):")
        console.print(Text("  " + command(paying[0].tolerance)), soft_wrap=True)  # whole, to copy and paste
    else:
        console.print(
            f"No cascade pays even at a tolerance of {result.looser[-1].tolerance:g} on {len(result.log)} items: "
            "keep the strongest model alone, or tune on more items (a bound's margin shrinks as 1/sqrt(items): "
            "4x the items halve it)."
        )
