"""Arguments of `cascade eval` and `cascade tune`, apart from their (heavy) implementation.

Building the command line must not import LangGraph and litellm: `cascade --help` stays fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cascade.cli.types import float_range, int_range, non_negative_int, positive_float, positive_int


def per_million(text: str) -> float:
    """USD per million tokens on the command line, per token inside (as YAML's `prices` hold it)."""
    return float_range(0.0, inclusive=True)(text) / 1e6


def _common(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    parser.add_argument("--config", "-c", type=Path, required=required, help="the cascade YAML to evaluate")
    parser.add_argument(
        "--dataset", type=Path, required=required, help="questions with gold answers (JSONL, CSV/TSV, ../shared/data)"
    )
    parser.add_argument("--format", help="dataset (or log) format (default: detected from the file)")
    parser.add_argument("--question-field", help="the dataset's question column (default: detected)")
    parser.add_argument("--answer-field", help="the dataset's gold answer column (default: detected)")
    parser.add_argument("--task", help="answer extractor: number, yesno, choice, first_line, text")
    parser.add_argument("--template", help="wraps each item for the cascade; must contain {question}")
    parser.add_argument("--limit", type=positive_int, help="items to use, after a seeded shuffle")
    parser.add_argument("--offset", type=non_negative_int, default=0, help="skip this many shuffled items first")
    parser.add_argument("--seed", type=int, default=0, help="seed of the shuffle, splits and bootstrap (default 0)")
    parser.add_argument("--concurrency", type=positive_int, default=1, help="items run at once (default 1)")
    parser.add_argument("--cache", type=Path, help="SQLite cache of model outputs (default: .cascade-cache/)")
    parser.add_argument("--out", type=Path, help="write the JSON report here")
    parser.add_argument("--explain", action="store_true", help="also print what each metric means")


def add_parsers(subparsers: Any) -> None:
    ev = subparsers.add_parser("eval", help="EM, tokens and cost of a cascade vs each tier, random and the oracle")
    _common(ev)
    ev.add_argument("--plot", type=Path, help="write the Pareto-frontier PNG here")
    ev.add_argument("--log", type=Path, help="write the per-tier outputs as a replayable log (JSONL)")
    ev.add_argument("--executor", choices=["local", "ray"], default="local", help="where items are evaluated")
    ev.add_argument("--ray-address", help="a Ray cluster to join (default: start a local Ray instance)")
    tu = subparsers.add_parser(
        "tune",
        help="choose thresholds on a tuning split, report them on a held-out split; "
        "or with --logs, search cascades over the logged models",
    )
    _common(tu, required=False)
    tu.add_argument(
        "--tune-fraction", type=float_range(0.0, high=0.99), default=0.5, help="share of items used for tuning"
    )
    tu.add_argument(
        "--value-per-correct", type=positive_float, help="worth of one correct answer (net benefit; default 1.0)"
    )
    tu.add_argument(
        "--price-per-million",
        dest="price_per_token",
        type=per_million,
        default=0.0,
        help="USD per million tokens, as --price and YAML's prices (net benefit)",
    )
    tu.add_argument(
        "--price-per-token", dest="price_per_token", type=float_range(0.0, inclusive=True), help="the same, per token"
    )
    tu.add_argument("--use-cost", action="store_true", help="charge the tiers' USD cost instead of a token price")
    tu.add_argument(
        "--min-em",
        type=float_range(0.0, inclusive=True, high=1.0),
        help="cheapest thresholds with at least this EM on the tuning split",
    )
    tu.add_argument(
        "--min-em-of-strongest",
        action="store_true",
        help="target: the EM of the most accurate tier alone on the tuning split",
    )
    tu.add_argument("--write", type=Path, help="write the tuned config YAML here")
    _label_free_arguments(tu)
    _logs_arguments(tu)


def _label_free_arguments(tu: argparse.ArgumentParser) -> None:
    """Tuning without gold answers: the reference model's answers are the labels (with --logs or --dataset)."""
    group = tu.add_argument_group("tuning without gold answers (--reference strongest --min-agreement A)")
    group.add_argument(
        "--reference",
        metavar="MODEL",
        help="'strongest' (with --config: the last tier; with --logs: the dearest model) or, with --logs, a model: "
        "its answers stand in for gold, which is not read",
    )
    group.add_argument(
        "--min-agreement",
        metavar="A",
        type=float_range(0.0, high=1.0),
        help="the cheapest cascade whose agreement with the reference has a one-sided lower bound of at least A",
    )
    group.add_argument(
        "--max-cost-usd",
        metavar="USD",
        type=positive_float,
        help="with --dataset: stop before the model calls spend more than this (outputs so far stay cached)",
    )


def _logs_arguments(tu: argparse.ArgumentParser) -> None:
    """`cascade tune --logs`: the optimizer over logged outputs of several models (no --config/--dataset)."""
    group = tu.add_argument_group("tuning from logs (cascade tune --logs LOG ...)")
    group.add_argument(
        "--logs",
        type=Path,
        action="append",
        help="several models' outputs per item (RouterBench, RouteLLM, eval --log); repeatable",
    )
    group.add_argument(
        "--tolerance",
        type=float_range(0.0, inclusive=True, high=1.0),
        default=0.01,
        help="with --min-em-of-strongest: EM the cascade may lose against the strongest model (default 0.01)",
    )
    group.add_argument(
        "--confidence",
        type=float_range(0.5, inclusive=True, high=0.999),
        default=0.95,
        help="one-sided confidence that the EM loss stays within the tolerance (default 0.95)",
    )
    group.add_argument(
        "--selection",
        choices=("simultaneous", "each"),
        default="simultaneous",
        help="simultaneous (default): the bound holds for every candidate at once, so for the one chosen; each: "
        "every candidate's own bound (cheaper choices, but the chosen is the one the tuning items flatter most)",
    )
    group.add_argument(
        "--min-saving",
        type=float_range(0.0, inclusive=True, high=0.99),
        default=0.10,
        help="a cascade must save this share of the strongest model's cost, else that model alone (default 0.10)",
    )
    group.add_argument("--folds", type=int_range(2, 20), default=5, help="folds of the out-of-fold scores")
    group.add_argument(
        "--model-map", action="append", default=[], metavar="LOG_NAME=MODEL", help="litellm string for a logged model"
    )
    group.add_argument("--price", action="append", default=[], metavar="MODEL=IN,OUT", help="USD per M tokens")
    group.add_argument("--prompt-overhead-tokens", type=non_negative_int, default=0, help="RouteLLM few-shot tokens")
    group.add_argument("--keep-contaminated", action="store_true", help="keep the prompts RouteLLM's evals leave out")
