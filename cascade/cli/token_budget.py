"""`cascade token-budget train`: learn a tier's token budgets from the store or from an eval log.

    cascade token-budget train --store runs.sqlite --tier think [--config-name NAME] --out budget.json
    cascade token-budget train --logs run.log.jsonl --model think --out budget.json

The file's report says, on answers held apart from the regression, what share fit the budget and
how large budgets were, beside one constant budget calibrated at the same share.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from cascade.cli.types import float_range, int_range
from cascade.errors import UserError


def add_parser(subparsers: Any) -> None:
    command = subparsers.add_parser(
        "token-budget", help="learn a tier's token budgets (a 'learned' budget policy's file)"
    )
    sub = command.add_subparsers(dest="token_budget_command", required=True)
    train = sub.add_parser("train", help="from correct answers in the store, or in an eval log")
    train.add_argument("--out", type=Path, required=True, help="the token-budget file to write (JSON)")
    train.add_argument("--store", metavar="DSN", help="labelled runs (SQLite path or postgresql:// DSN)")
    train.add_argument("--tier", help="with --store: the tier whose budgets are learned")
    train.add_argument("--config-name", help="with --store: only runs of this cascade config")
    train.add_argument("--logs", type=Path, help="a log written by `cascade eval --log`")
    train.add_argument("--model", help="with --logs: the tier (log column) whose budgets are learned")
    train.add_argument(
        "--share", type=float_range(0.0, high=0.999), default=0.9, help="share of correct answers that fit"
    )
    train.add_argument("--folds", type=int_range(2, 20), default=5, help="folds of the out-of-fold check (default 5)")
    train.add_argument("--seed", type=int, default=0, help="seed of the folds (default 0)")


def run(args: argparse.Namespace) -> int:
    from cascade.token_budget.train import fit_budget_model

    examples, source = _examples(args)
    model = fit_budget_model(examples, share=args.share, folds=args.folds, seed=args.seed, training={"source": source})
    model.save(args.out)
    console = Console()
    print_report(model.report, console)
    console.print(f"token budgets: {args.out} ({len(examples)} correct answers from {source}, share {args.share:g})")
    return 0


def _examples(args: argparse.Namespace) -> tuple[list[Any], str]:
    from cascade.optimize.token_budget_data import log_examples, store_examples

    if bool(args.store) == bool(args.logs):
        raise UserError("token-budget train needs one source: --store DSN with --tier, or --logs LOG with --model")
    if args.store:
        if not args.tier:
            raise UserError("--store needs --tier: the tier whose budgets are learned")
        from cascade.store import open_store

        store = open_store(args.store, must_exist=True)
        try:
            return store_examples(store, args.tier, config_name=args.config_name), f"store {args.store}"
        finally:
            store.close()
    if not args.model:
        raise UserError("--logs needs --model: the log column whose budgets are learned")
    from cascade.eval.data.formats import read_log

    log = read_log(args.logs)
    if args.model not in log.models:
        raise UserError(f"the log has no model {args.model!r}; it has: {', '.join(log.models)}")
    return log_examples(log, args.model), str(args.logs)


def print_report(report: dict[str, Any], console: Console) -> None:
    table = Table(title="token budgets on held-apart answers (cross-fitted)", title_justify="left")
    for column in ("share", "fit", "mean budget", "constant: fit", "constant: mean budget"):
        table.add_column(column, justify="right")
    for share, row in report.get("held_apart", {}).items():
        table.add_row(
            share,
            f"{row['fit']:.3f}",
            f"{row['mean_budget']:.0f}",
            f"{row['constant_fit']:.3f}",
            f"{row['constant_mean_budget']:.0f}",
        )
    console.print(table)
