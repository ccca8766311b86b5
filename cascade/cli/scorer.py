"""`cascade scorer train`: (re)train a cascade's correctness scorer from the store or from a log.

    cascade scorer train --store runs.sqlite [--config-name NAME] --out scorer.json
    cascade scorer train --logs LOG --config T.yaml --out T.scorer.json

The file's report is the calibration (reliability bins, Brier, log loss, AUROC) of cross-fitted
predictions: each example scored by a scorer trained without it.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from cascade.cli.types import int_range
from cascade.errors import UserError
from cascade.extras import require


def add_parser(subparsers: Any) -> None:
    scorer = subparsers.add_parser("scorer", help="train a correctness scorer (the 'scorer' verifier's file)")
    sub = scorer.add_subparsers(dest="scorer_command", required=True)
    train = sub.add_parser("train", help="train from labelled runs in the store, or from a log of the config's models")
    train.add_argument("--out", type=Path, required=True, help="the scorer file to write (JSON)")
    train.add_argument("--store", "--dsn", metavar="DSN", help="labelled runs (SQLite path or postgresql:// DSN)")
    train.add_argument("--config-name", help="with --store: only runs of this cascade config")
    train.add_argument("--logs", type=Path, help="a log of the config's models (RouterBench, RouteLLM, eval --log)")
    train.add_argument("--config", type=Path, help="with --logs: the cascade whose tiers the scorer judges")
    train.add_argument(
        "--model-map", action="append", default=[], metavar="LOG_NAME=MODEL", help="litellm string for a logged model"
    )
    train.add_argument("--folds", type=int_range(2, 20), default=5, help="folds of the calibration report")
    train.add_argument("--seed", type=int, default=0, help="seed of the folds (default 0)")


def run(args: argparse.Namespace) -> int:
    from cascade.scoring.calibration import calibration_report
    from cascade.scoring.train import cross_fit, fit_scorer

    require("learn", "cascade scorer train")
    inputs, labels, source, options = _examples(args)
    if len(inputs) < 2 * args.folds:
        raise UserError(f"{len(inputs)} labelled answers: too few to train and check a scorer")
    options = replace(options, seed=args.seed)
    held = cross_fit(inputs, labels, args.folds, options)
    calibration = {}
    for tier in sorted({inp.tier for inp in inputs}):
        rows = [i for i, inp in enumerate(inputs) if inp.tier == tier]
        calibration[tier] = calibration_report(held[rows], [labels[i] for i in rows])
    scorer = fit_scorer(inputs, labels, options, training={"sources": [source]})
    note = "cross-fitted: each answer scored by a scorer trained without it"
    replace(scorer, report={"calibration": calibration, "note": note}).save(args.out)
    console = Console()
    print_calibration(calibration, console)
    console.print(f"scorer: {args.out} ({len(inputs)} answers from {source})")
    return 0


def _examples(args: argparse.Namespace) -> tuple[list[Any], list[bool], str, Any]:
    from cascade.optimize.scorer_data import log_examples, store_examples
    from cascade.scoring.train import FitOptions

    if bool(args.store) == bool(args.logs):
        raise UserError("scorer train needs one source: --store DSN, or --logs LOG with --config")
    if args.store:
        from cascade.store import open_store

        store = open_store(args.store, must_exist=True)
        try:
            inputs, labels = store_examples(store, config_name=args.config_name)
        finally:
            store.close()
        return inputs, labels, f"store {args.store}", FitOptions()
    if args.config is None:
        raise UserError("--logs needs --config: the cascade whose tiers the scorer judges")
    from cascade.cli.log_options import model_map
    from cascade.config.schema import load_config
    from cascade.eval.data.formats import read_log

    inputs, labels = log_examples(load_config(args.config), read_log(args.logs), model_map(args.model_map))
    return inputs, labels, str(args.logs), FitOptions(shared_head=False)


def print_calibration(calibration: dict[str, Any], console: Console) -> None:
    table = Table(title="scorer calibration (cross-fitted)", title_justify="left")
    for column in ("tier", "n", "correct", "Brier", "log loss", "AUROC", "ECE"):
        table.add_column(column, justify="left" if column == "tier" else "right")
    for tier, r in calibration.items():
        auroc = "—" if r["auroc"] is None else f"{r['auroc']:.3f}"
        table.add_row(
            tier,
            str(r["n"]),
            str(r["positives"]),
            f"{r['brier']:.4f}",
            f"{r['log_loss']:.4f}",
            auroc,
            f"{r['ece']:.4f}",
        )
    console.print(table)
