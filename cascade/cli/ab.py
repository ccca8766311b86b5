"""`cascade ab report`: per-variant EM, tokens and cost of an A/B test, and whether it has a winner.

    cascade ab report [--config FILE] [--store DSN] [--config-name NAME] [--experiment NAME]
                      [--value-per-correct USD] [--price-per-token USD] [--horizon N]
                      [--alpha 0.05] [--min-labelled 20] [--json]

With `--config`, the file's `experiment:` block supplies the experiment, its traffic split, the
value of a right answer, the horizon and alpha (flags given on the command line win).
Wire with `cli_ab.add_parser(sub)` and dispatch `command == "ab"` to `cli_ab.run(args)`.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from cascade.cli.types import add_store
from cascade.errors import UserError
from cascade.learning.ab import ABReport, Criterion, ab_report
from cascade.store import open_store


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `ab report` on the `cascade` command's subparsers."""
    parser: argparse.ArgumentParser = subparsers.add_parser("ab", help="A/B tests of configs recorded in the store")
    actions = parser.add_subparsers(dest="ab_command")
    report = actions.add_parser("report", help="per-variant EM/tokens/cost and whether one variant wins")
    add = report.add_argument
    add("--config", "-c", type=Path, help="a cascade YAML whose experiment: block describes the test")
    add_store(report)
    add("--config-name", help="only runs recorded under this config name")
    add("--experiment", help="only runs assigned by this experiment")
    add("--value-per-correct", type=float, help="USD a right answer is worth: judge on net benefit, not EM alone")
    add("--price-per-token", type=float, help="USD per token, when runs carry no dollar cost")
    add("--horizon", type=int, help="a fixed-horizon test on this many labelled runs per variant")
    add("--alpha", type=float, help="significance level (default 0.05)")
    add("--min-labelled", type=int, help="labelled runs each variant needs before a verdict (default 20)")
    add("--json", action="store_true", help="print JSON instead of a table")
    return parser


def options(args: argparse.Namespace) -> dict[str, Any]:
    """The report's settings: the flags, filled in from the config's experiment block."""
    found: dict[str, Any] = {"alpha": 0.05, "min_labelled": 20, "weights": None}
    if args.config is not None:
        from cascade.config.schema import load_config

        config = load_config(args.config)
        if config.experiment is None:
            raise UserError(f"{args.config} has no experiment: block")
        spec = config.experiment
        found.update(config_name=config.name, experiment=spec.name, weights=spec.weights, horizon=spec.horizon)
        found.update(alpha=spec.alpha, min_labelled=spec.min_labelled)
        found.update(value_per_correct=spec.value_per_correct, price_per_token=spec.price_per_token)
    names = ("config_name", "experiment", "value_per_correct", "price_per_token", "horizon", "alpha", "min_labelled")
    found.update({name: getattr(args, name) for name in names if getattr(args, name) is not None})
    if not 0 < found["alpha"] < 1:
        raise UserError(f"--alpha must be between 0 and 1, got {found['alpha']}")
    for name in ("value_per_correct", "horizon", "min_labelled"):
        if found.get(name) is not None and found[name] <= 0:
            raise UserError(f"--{name.replace('_', '-')} must be positive, got {found[name]}")
    return found


def run(args: argparse.Namespace, console: Console | None = None) -> int:
    """Print the report; 0 whether or not there is a winner (the verdict says which)."""
    if getattr(args, "ab_command", None) != "report":
        raise UserError("usage: cascade ab report [--config FILE] [--store DSN] [--value-per-correct USD]")
    found = options(args)
    criterion = Criterion(found.get("value_per_correct"), found.get("price_per_token"))
    store = open_store(args.store, must_exist=True)
    try:
        report = ab_report(
            store, found.get("config_name"), found["alpha"], found["min_labelled"], criterion=criterion,
            horizon=found.get("horizon"), experiment=found.get("experiment"), weights=found["weights"],
        )  # fmt: skip
    finally:
        store.close()
    out = console or Console()
    if args.json:
        out.print_json(json.dumps(report_json(report)))
    else:
        render(report, out)
    return 0


def render(report: ABReport, console: Console) -> None:
    if not report.variants:
        console.print("no runs with a variant in the store (an experiment: block, or record_run(..., variant=...))")
        return
    console.print(variants_table(report))
    if report.comparisons:
        console.print(comparisons_table(report))
    style = "bold green" if report.winner else "yellow"
    console.print(Text.assemble(("verdict: ", "bold"), (report.verdict, style), f"  [{report.method} test]"))


def variants_table(report: ABReport) -> Table:
    table = Table(title="A/B variants")
    value = report.criterion.value_per_correct
    columns = ["variant", "runs", "labelled", "EM", "tokens/run", "cost/run ($)"] + (["net/run ($)"] if value else [])
    for column in columns:
        table.add_column(column, justify="left" if column == "variant" else "right")
    for v in report.variants:
        mark = " ★" if v.name == report.winner else ""
        row = [v.name + mark, str(v.runs), str(v.labelled), _fmt(v.em, ".3f"), _fmt(v.mean_tokens, ".1f"),
               _fmt(v.mean_cost_usd, ".6f")]  # fmt: skip
        if value:
            net = report.criterion.shown(float(v.scores(report.criterion).mean())) if v.labelled else None
            row.append(_fmt(net, ".6f"))
        table.add_row(*row)
    return table


def comparisons_table(report: ABReport) -> Table:
    title = f"{report.criterion.metric}: leader − each other variant (α={report.alpha:g} split across comparisons)"
    table = Table(title=title)
    for column in ("comparison", "Δ", "interval", "p", "ΔEM", "EM interval", "significant"):
        table.add_column(column, justify="left" if column == "comparison" else "right")
    for c in report.comparisons:
        table.add_row(
            f"{c.a} − {c.b}", f"{c.diff:+.4g}", _interval(c.ci), f"{c.p_value:.3g}", f"{c.em_diff:+.3f}",
            _interval(c.em_ci), "yes" if c.significant else "no",
        )  # fmt: skip
    return table


def report_json(report: ABReport) -> dict[str, Any]:
    criterion = report.criterion
    variants = [
        {"name": v.name, "runs": v.runs, "labelled": v.labelled, "em": v.em, "mean_tokens": v.mean_tokens,
         "mean_cost_usd": v.mean_cost_usd,
         "net_per_run_usd": criterion.shown(float(v.scores(criterion).mean()))
         if criterion.value_per_correct and v.labelled else None}
        for v in report.variants
    ]  # fmt: skip
    return {"winner": report.winner, "verdict": report.verdict, "alpha": report.alpha, "method": report.method,
            "metric": criterion.metric, "variants": variants,
            "comparisons": [asdict(c) for c in report.comparisons]}  # fmt: skip


def _interval(ci: tuple[float, float]) -> str:
    return f"[{ci[0]:+.4g}, {ci[1]:+.4g}]"


def _fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)
