"""`cascade ab report`: per-variant EM, tokens and cost of an A/B test, and whether it has a winner.

    cascade ab report [--dsn DSN] [--config-name NAME] [--alpha 0.05] [--min-labelled 20] [--json]

Wire with `cli_ab.add_parser(sub)` and dispatch `command == "ab"` to `cli_ab.run(args)`.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from cascade.errors import UserError
from cascade.learning.ab import ABReport, ab_report
from cascade.store import open_store


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `ab report` on the `cascade` command's subparsers."""
    parser: argparse.ArgumentParser = subparsers.add_parser("ab", help="A/B tests of configs recorded in the store")
    actions = parser.add_subparsers(dest="ab_command")
    report = actions.add_parser("report", help="per-variant EM/tokens/cost and the significance of the difference")
    report.add_argument("--dsn", help="store path or DSN (default: $CASCADE_STORE, else the user data dir)")
    report.add_argument("--config-name", help="only runs recorded under this config name")
    report.add_argument("--alpha", type=float, default=0.05, help="significance level (default 0.05)")
    report.add_argument("--min-labelled", type=int, default=20, help="labelled runs each variant needs (default 20)")
    report.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser


def run(args: argparse.Namespace, console: Console | None = None) -> int:
    """Print the report; 0 whether or not there is a winner (the verdict says which)."""
    if getattr(args, "ab_command", None) != "report":
        raise UserError("usage: cascade ab report [--dsn DSN] [--config-name NAME] [--alpha 0.05]")
    if not 0 < args.alpha < 1:
        raise UserError(f"--alpha must be between 0 and 1, got {args.alpha}")
    store = open_store(args.dsn)
    try:
        report = ab_report(store, args.config_name, args.alpha, args.min_labelled)
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
        console.print("no runs with a variant in the store (record_run(..., variant=...))")
        return
    console.print(variants_table(report))
    if report.comparisons:
        console.print(comparisons_table(report))
    style = "bold green" if report.winner else "yellow"
    console.print(Text.assemble(("verdict: ", "bold"), (report.verdict, style)))


def variants_table(report: ABReport) -> Table:
    table = Table(title="A/B variants")
    for column in ("variant", "runs", "labelled", "EM", "tokens/run", "cost/run ($)"):
        table.add_column(column, justify="left" if column == "variant" else "right")
    for v in report.variants:
        mark = " ★" if v.name == report.winner else ""
        table.add_row(
            v.name + mark, str(v.runs), str(v.labelled), _fmt(v.em, ".3f"), _fmt(v.mean_tokens, ".1f"),
            _fmt(v.mean_cost_usd, ".6f"),
        )  # fmt: skip
    return table


def comparisons_table(report: ABReport) -> Table:
    table = Table(title=f"EM difference (two-proportion z-test, α={report.alpha:g} split across comparisons)")
    for column in ("comparison", "ΔEM", "z", "p", "bootstrap CI", "significant"):
        table.add_column(column, justify="left" if column == "comparison" else "right")
    for c in report.comparisons:
        ci = f"[{c.ci[0]:+.3f}, {c.ci[1]:+.3f}]"
        table.add_row(
            f"{c.a} − {c.b}", f"{c.diff:+.3f}", f"{c.z:.2f}", f"{c.p_value:.3g}", ci, "yes" if c.significant else "no"
        )
    return table


def report_json(report: ABReport) -> dict[str, Any]:
    variants = [
        {"name": v.name, "runs": v.runs, "labelled": v.labelled, "em": v.em,
         "mean_tokens": v.mean_tokens, "mean_cost_usd": v.mean_cost_usd}
        for v in report.variants
    ]  # fmt: skip
    comparisons = [asdict(c) for c in report.comparisons]
    return {"winner": report.winner, "verdict": report.verdict, "alpha": report.alpha,
            "variants": variants, "comparisons": comparisons}  # fmt: skip


def _fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)
