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
from typing import Any, Literal

from rich.console import Console
from rich.table import Table
from rich.text import Text

from cascade.cli.log_options import log_options, model_map
from cascade.errors import UserError
from cascade.eval.analysis.tables import WIDTH
from cascade.eval.data.external import LogOptions
from cascade.eval.data.formats import read_log
from cascade.eval.data.logs import LogTable
from cascade.extras import require
from cascade.optimize.select import Objective, Selection, Summary
from cascade.optimize.tolerances import TolerancePoint, vote_notes
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
    if args.reference is not None or args.min_agreement is not None:
        return label_free_settings(args)
    if args.min_em_of_strongest == (args.value_per_correct is not None):
        raise UserError(
            "tune --logs needs one objective: --min-em-of-strongest, --value-per-correct, "
            "or without gold answers --reference strongest --min-agreement A"
        )
    kind: Literal["tolerance", "value"] = "tolerance" if args.min_em_of_strongest else "value"
    value = 0.0 if args.min_em_of_strongest else args.value_per_correct
    objective = Objective(kind, args.tolerance, value, args.confidence, args.min_saving, selection=args.selection)
    return Settings(objective=objective, folds=args.folds, seed=args.seed)


def label_free_settings(args: argparse.Namespace) -> Settings:
    """`--reference R --min-agreement A`: agreement with R stands in for EM, and may fall to A at the lower bound
    (the tolerance method with 1 - A of tolerance: R agrees with itself on every item)."""
    if args.reference is None or args.min_agreement is None:
        raise UserError("tuning without gold answers needs both --reference (e.g. strongest) and --min-agreement A")
    if args.min_em_of_strongest or args.value_per_correct is not None or args.min_em is not None:
        raise UserError(
            "--min-agreement replaces --min-em, --min-em-of-strongest and --value-per-correct: without gold there is "
            "no EM"
        )
    objective = Objective(
        "tolerance", 1.0 - args.min_agreement, 0.0, args.confidence, args.min_saving, selection=args.selection
    )
    return Settings(objective=objective, folds=args.folds, seed=args.seed, reference=args.reference)


def run_tune_logs(args: argparse.Namespace) -> int:
    from cascade.config.schema import AnswerConfig
    from cascade.io.answers import extractor
    from cascade.optimize.writer import answer_format, write

    require("learn", "cascade tune --logs")  # its search fits correctness scorers
    options = log_options(args)
    names = model_map(args.model_map)
    settings = settings_of(args)
    if args.max_cost_usd is not None:
        raise UserError("--max-cost-usd caps the model calls of --dataset; tuning from logs calls no model")
    log = read_logs(args.logs, args.format, options)
    task = task_of(log)
    console = Console()
    if not console.is_terminal:
        console.width = WIDTH  # a file or a pipe gets whole model names
    result = tune(log, extractor(AnswerConfig(format=answer_format(task))), settings)
    print_summary(result, console)
    if result.each is not None:
        print_each(result, console, command_of(args, selection="each"))
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


def command_of(args: argparse.Namespace, *, tolerance: float | None = None, selection: str | None = None) -> str:
    """The command that reproduces this tuning (what the written config's header shows), or the same
    at another `tolerance` or `selection` (what to run next when nothing pays)."""
    parts = ["cascade", "tune", *(f"--logs {shlex.quote(str(p))}" for p in args.logs)]
    settings = settings_of(args)
    objective = settings.objective
    tolerance = objective.tolerance if tolerance is None else tolerance
    if settings.reference is not None:
        parts += [f"--reference {shlex.quote(settings.reference)}", f"--min-agreement {1 - tolerance:g}"]
    elif objective.kind == "tolerance":
        parts += ["--min-em-of-strongest", f"--tolerance {tolerance:g}"]
    else:
        parts.append(f"--value-per-correct {objective.value_per_correct:g}")
    parts += [f"--confidence {objective.confidence:g}", f"--min-saving {objective.min_saving:g}"]
    parts += [f"--selection {selection or objective.selection}"]
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


def summary_dict(s: Summary, selection: Selection, label_free: bool = False) -> dict[str, Any]:
    bound = selection.bound(s)
    figures = (
        {"agreement": s.em, "agreement_lower_bound": 1.0 + bound}
        if label_free
        else {"em": s.em, "em_delta": s.diff, "em_delta_lower_bound": bound}
    )
    return {
        "cascade": s.structure.label(),
        "tiers": [{"name": t.name, "models": list(t.models)} for t in s.structure.specs],
        "verifiers": [g.verifier for g in s.structure.gates],
        "thresholds": list(s.thresholds),
        **figures,
        "cost_usd": s.cost,
        "cost_ratio": s.ratio,
        **({} if label_free else {"net_benefit_per_item": s.benefit}),
    }


def tune_report(result: TuneResult, sources: list[str]) -> dict[str, Any]:
    objective = result.settings.objective
    label_free = result.settings.reference is not None
    goal: dict[str, Any] = dict(objective.__dict__)
    if label_free:
        goal = {"kind": "min_agreement", "min_agreement": 1.0 - objective.tolerance, "confidence": objective.confidence}
        goal["min_saving"] = objective.min_saving
    return {
        "sources": sources,
        "n_items": len(result.log),
        "excluded_items": result.log.excluded,
        "strongest": result.strongest,
        "measure": result.measure,
        "labels": "gold" if not label_free else f"{result.strongest}'s answers (the log's gold is not read)",
        "objective": goal,
        "settings": {"folds": result.settings.folds, "seed": result.settings.seed, "candidates": result.considered},
        "pays": result.pays,
        "selection": selection_dict(result.selection),
        "chosen": summary_dict(result.chosen, result.selection, label_free),
        "reference": summary_dict(result.reference, result.selection, label_free),
        "alternatives": [summary_dict(s, result.selection, label_free) for s in result.alternatives],
        "each_candidates_own_bound": None if result.each is None else looser_dict(result.each, label_free),
        "looser_tolerances": [looser_dict(point, label_free) for point in result.looser],
        "scorer": result.scorer.report if result.scorer else None,
        "note": "figures on the tuning items; judge the config on other items with `cascade replay --config`",
    }


def selection_dict(selection: Selection) -> dict[str, Any]:
    return {"method": selection.method, "critical_value": selection.critical, "candidates": selection.family}


def looser_dict(point: TolerancePoint, label_free: bool) -> dict[str, Any]:
    """A looser tolerance's choice; without gold, as the minimum agreement it stands for."""
    if not label_free:
        return point.as_dict()
    s = point.chosen
    chosen = None
    if s is not None and point.bound is not None:
        chosen = {"cascade": s.structure.label(), "cost_ratio": s.ratio, "agreement": 1 + s.diff}
        chosen["agreement_bound"] = 1 + point.bound
    return {"min_agreement": 1 - point.tolerance, "chosen": chosen}


def print_summary(result: TuneResult, console: Console, source: str = "cascade tune --logs") -> None:
    label_free = result.settings.reference is not None
    title = f"{source}: {len(result.log)} tuning items"
    if label_free:
        title += f"; no gold: {result.measure} counts as right"
    table = Table(title=title, title_justify="left")
    columns = (
        ("agreement", "lower bound", "cost × reference")
        if label_free
        else ("EM", "Δ EM (lower bound)", "cost × strongest")
    )
    for column in ("", "cascade", *columns, "thresholds"):
        table.add_column(column, justify="left" if column in ("", "cascade") else "right", overflow="fold")
    rows = [("reference alone" if label_free else "strongest alone", result.reference, "")]
    rows += [("chosen", result.chosen, "bold green")]
    rows += [("alternative", s, "dim") for s in result.alternatives[:5]]
    for label, s, style in rows:
        thresholds = ", ".join(f"{t:.4g}" for t in s.thresholds) or "—"
        bound = result.selection.bound(s)
        low = f"{1 + bound:.3f}" if label_free else f"{s.diff:+.3f} ({bound:+.3f})"
        cascade = Text(s.structure.label())  # its "[vote]" is no markup
        table.add_row(label, cascade, f"{s.em:.3f}", low, f"{s.ratio:.3f}", thresholds, style=style)
    console.print(table)
    for note in dict.fromkeys(note for _, s, _ in rows for note in vote_notes(s)):  # each gate shown, once
        console.print(Text(note))
    if result.settings.objective.kind == "tolerance":
        console.print(f"Lower bounds: {result.selection.describe()}{_why(result.selection)}")
    if not result.pays:
        console.print(
            f"[bold]No cascade pays on these items[/]: the config is {result.strongest} alone ({why_not(result)})."
        )


def _why(selection: Selection) -> str:
    if selection.method == "each":
        return "; the cheapest that clears its own bound is the one these items flatter most."
    return ": the promise holds for the cascade chosen, whichever it is, with the confidence asked."


def print_each(result: TuneResult, console: Console, command: str) -> None:
    """The trade-off: the cheaper cascade each candidate's own bound would choose, what it promises, the command."""
    point = result.each
    assert point is not None and point.chosen is not None and point.bound is not None
    s, label_free = point.chosen, result.settings.reference is not None
    seen = f"{result.measure} {s.em:.3f}" if label_free else f"EM {s.diff:+.3f} against {result.strongest}"
    bound = f"{1 + point.bound:.3f}" if label_free else f"{point.bound:+.3f}"
    console.print(
        Text(
            f"Not chosen: {s.structure.label()} at {s.ratio:.3f}x ({seen} on these items; its own lower bound "
            f"{bound}) clears the bar only when the choice among {result.selection.family} candidates is not "
            "accounted for: a cheaper config whose promise is a hope, not a 95% statement. To take it anyway "
            "(and watch it live with audit:):"
        )
    )
    console.print(Text("  " + command), soft_wrap=True)


def why_not(result: TuneResult) -> str:
    """The bar no candidate cleared, in the measure's own terms."""
    tolerance = result.settings.objective.tolerance
    if result.settings.reference is not None:
        return f"none has a lower bound of its {result.measure} of at least {1 - tolerance:g} while saving enough"
    return f"none has a lower bound of at least -{tolerance:g} while saving enough"


def print_looser(result: TuneResult, console: Console, command: Callable[[float], str]) -> None:
    """What each looser tolerance (without gold: each lower minimum agreement) would choose, the bound it
    was chosen on, and the exact command to run next."""
    label_free = result.settings.reference is not None
    goal = "minimum agreement" if label_free else "tolerance"
    table = Table(title=f"What each {goal} would buy on these items", title_justify="left")
    columns = ("min agreement", "agreement", "bound") if label_free else ("tolerance", "Δ EM", "bound")
    for column in (columns[0], "cascade", "cost × reference" if label_free else "cost × strongest", *columns[1:]):
        table.add_column(column, justify="left" if column == "cascade" else "right", overflow="fold")
    shift = 1.0 if label_free else 0.0  # agreement = 1 + its difference from the reference, which agrees always
    for point in result.looser:
        s, asked = point.chosen, f"{1 - point.tolerance:g}" if label_free else f"{point.tolerance:g}"
        if s is None:
            table.add_row(asked, f"{result.strongest} alone", "1.000", "—", "—", style="dim")
        else:
            figures = (f"{s.ratio:.3f}", f"{shift + s.diff:+.3f}", f"{shift + (point.bound or 0.0):+.3f}")
            table.add_row(asked, Text(s.structure.label()), *(f.lstrip("+") if label_free else f for f in figures))
    console.print(table)
    asked_tolerance = result.settings.objective.tolerance
    paying = [p for p in result.looser if p.chosen is not None and p.tolerance > asked_tolerance]
    if paying:
        t = paying[0].tolerance
        promise = f"an agreement of {1 - t:g}" if label_free else f"an EM loss of up to {t:g}"
        console.print(f"Next, to accept {promise} (at its lower bound):")
        console.print(Text("  " + command(t)), soft_wrap=True)  # whole, to copy and paste
    else:
        last = result.looser[-1].tolerance
        bar = f"a minimum agreement of {1 - last:g}" if label_free else f"a tolerance of {last:g}"
        console.print(
            f"No cascade pays even at {bar} on {len(result.log)} items: keep {result.strongest} alone, or tune on "
            "more items (a bound's margin shrinks as 1/sqrt(items): 4x the items halve it)."
        )
