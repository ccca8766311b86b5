"""`cascade replay`: evaluate cascades offline on logged per-model outputs, no model calls.

Wire with `add_parser(sub)` and dispatch `command == "replay"` to `run(args)`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich.console import Console

from cascade.errors import UserError
from cascade.eval.analysis.replay_report import ReplayReport
from cascade.eval.data.external import LogOptions
from cascade.eval.data.formats import LOG_FORMATS
from cascade.extras import require


def _names(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `replay` on the `cascade` command's subparsers."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "replay", help="trace the cost–EM curve of cascades on logged outputs (RouterBench, RouteLLM, our runs)"
    )
    parser.add_argument("--dataset", required=True, type=Path, help="log file (CSV/JSONL) or RouteLLM mmlu dir")
    parser.add_argument(
        "--models",
        type=_names,
        help="cascade tiers in order, comma-separated (default: all models; "
        "the cascade runs through those on the cost–EM hull)",
    )
    parser.add_argument("--format", choices=LOG_FORMATS, help="default: detected")
    parser.add_argument(
        "--confidence",
        choices=["agreement", "logged", "heuristic"],
        help="where tier confidence comes from (default: the best the log allows)",
    )
    parser.add_argument("--verifiers", type=_names, help="models whose answers agreement compares with")
    parser.add_argument("--threshold", type=float, help="fixed shared threshold (default: cross-fitted)")
    parser.add_argument("--tolerance", type=float, default=0.0, help="EM below the strong model still 'matched'")
    parser.add_argument(
        "--price",
        action="append",
        default=[],
        metavar="MODEL=IN,OUT",
        help="USD per million input/output tokens for logs without cost (repeatable)",
    )
    parser.add_argument(
        "--prompt-overhead-tokens",
        type=int,
        default=0,
        help="few-shot tokens the log's prompts omit, added to each call (RouteLLM logs)",
    )
    parser.add_argument(
        "--keep-contaminated",
        action="store_true",
        help="keep the prompts RouteLLM's evals leave out (its contaminated_prompts.jsonl beside the log)",
    )
    parser.add_argument(
        "--config",
        type=Path,
        help="replay exactly this cascade config (its verifiers, thresholds, router), no re-tuning",
    )
    parser.add_argument(
        "--model-map",
        action="append",
        default=[],
        metavar="LOG_NAME=MODEL",
        help="with --config: a log model's litellm string",
    )
    parser.add_argument("--out", type=Path, help="write the JSON report here")
    parser.add_argument("--plot", type=Path, help="write the Pareto-frontier PNG here")
    parser.add_argument("--seed", type=int, default=0, help="seed for the cross-fitting split and bootstrap")
    parser.add_argument("--explain", action="store_true", help="also print what each metric means")
    return parser


def run(args: argparse.Namespace) -> int:
    """Replay, print the tables, write `--out` JSON and `--plot` PNG. 0 on success."""
    from cascade.cli.log_options import log_options as options_of
    from cascade.eval.analysis.replay import replay_file
    from cascade.eval.analysis.tables import print_report

    if args.plot:
        require("plot", "--plot")
    log_options = options_of(args)
    if args.config is not None:
        report = _replay_config(args, log_options)
    else:
        report = replay_file(
            args.dataset,
            fmt=args.format,
            models=args.models,
            confidence=args.confidence,
            verifiers=args.verifiers,
            log_options=log_options,
            threshold=args.threshold,
            tolerance=args.tolerance,
            seed=args.seed,
        )
    console = Console()
    print_report(report, console, explain=args.explain)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        console.print(f"report: {args.out}")
    if args.plot:
        from cascade.eval.analysis.plot import plot_report

        console.print(f"plot: {plot_report(report, args.plot)}")
    return 0


def _replay_config(args: argparse.Namespace, log_options: LogOptions) -> ReplayReport:
    from cascade.cli.log_options import model_map
    from cascade.config.schema import load_config
    from cascade.eval.analysis.config_replay import run_config
    from cascade.eval.analysis.config_report import config_report
    from cascade.eval.data.formats import read_log

    clashing = [
        flag
        for flag, value in (
            ("--models", args.models),
            ("--confidence", args.confidence),
            ("--verifiers", args.verifiers),
            ("--threshold", args.threshold),
        )
        if value is not None
    ]
    if clashing:
        raise UserError(f"--config replays the config as written; {', '.join(clashing)} would re-tune it")
    config = load_config(args.config)
    log = read_log(args.dataset, args.format, **log_options)
    run = run_config(config, log, model_map(args.model_map))
    return config_report(run, seed=args.seed)


def main(argv: list[str] | None = None) -> int:
    """Standalone entry for trying replay before it is wired into `cascade`."""
    parser = argparse.ArgumentParser(prog="cascade")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return run(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
