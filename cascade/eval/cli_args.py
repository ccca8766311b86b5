"""Arguments of `cascade eval` and `cascade tune`, apart from their (heavy) implementation.

Building the command line must not import LangGraph and litellm: `cascade --help` stays fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cascade.cli_types import float_range, non_negative_int, positive_float, positive_int


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", type=Path, required=True)
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--format", help="dataset format (default: detected from the file)")
    parser.add_argument("--question-field")
    parser.add_argument("--answer-field")
    parser.add_argument("--task", help="answer extractor: number, yesno, choice, first_line, text")
    parser.add_argument("--template", help="wraps each item for the cascade; must contain {question}")
    parser.add_argument("--limit", type=positive_int, help="items to use, after a seeded shuffle")
    parser.add_argument("--offset", type=non_negative_int, default=0, help="skip this many shuffled items first")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--concurrency", type=positive_int, default=1)
    parser.add_argument("--cache", type=Path, help="SQLite cache of model outputs (default: .cascade-cache/)")
    parser.add_argument("--out", type=Path, help="write the JSON report here")


def add_parsers(subparsers: Any) -> None:
    ev = subparsers.add_parser("eval", help="EM, tokens and cost of a cascade vs each tier, random and the oracle")
    _common(ev)
    ev.add_argument("--plot", type=Path, help="write the Pareto-frontier PNG here")
    ev.add_argument("--log", type=Path, help="write the per-tier outputs as a replayable log (JSONL)")
    ev.add_argument("--executor", choices=["local", "ray"], default="local", help="where items are evaluated")
    ev.add_argument("--ray-address", help="a Ray cluster to join (default: start a local Ray instance)")
    tu = subparsers.add_parser("tune", help="choose thresholds on a tuning split, report them on a held-out split")
    _common(tu)
    tu.add_argument(
        "--tune-fraction", type=float_range(0.0, high=0.99), default=0.5, help="share of items used for tuning"
    )
    tu.add_argument("--value-per-correct", type=positive_float, default=1.0, help="worth of one correct answer")
    tu.add_argument(
        "--price-per-token", type=float_range(0.0, inclusive=True), default=0.0, help="price of one token (net benefit)"
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
