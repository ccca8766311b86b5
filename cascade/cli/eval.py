"""`cascade eval` and `cascade tune`: live evaluation with baselines, and cost-benefit tuning.

cascade eval --config configs/local.yaml --dataset ../shared/data/qa/sst2_dev.tsv --limit 200 --out r.json
cascade tune --config configs/local.yaml --dataset ... --limit 300 --min-em 0.9 --write tuned.yaml
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
from pathlib import Path

import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from cascade.cli.progress import EvalProgress
from cascade.completers.plugins import make_completer
from cascade.completers.progress import Meter, watching
from cascade.config import safe_yaml
from cascade.config.schema import CascadeConfig, load_config
from cascade.errors import UserError
from cascade.eval.analysis.replay_report import ReplayReport, RunCounts
from cascade.eval.data.formats import load_dataset
from cascade.eval.data.items import Item, split
from cascade.eval.live.cache import CachingCompleter
from cascade.eval.live.report import live_report
from cascade.eval.live.runner import EvalRun, cache_path_for, evaluate, query_of, score_results
from cascade.extras import require
from cascade.optimize.live_tune import Candidate, Objective, score, search, tuned_yaml, with_thresholds
from cascade.run.engine import Cascade


def load_items(args: argparse.Namespace) -> list[Item]:
    items = load_dataset(
        args.dataset, args.format, question_field=args.question_field, answer_field=args.answer_field, task=args.task
    )
    random.Random(args.seed).shuffle(items)
    items = items[args.offset :]
    return items[: args.limit] if args.limit else items


def cached_cascade(config: CascadeConfig, args: argparse.Namespace) -> tuple[Cascade, CachingCompleter]:
    path = args.cache or cache_path_for(config._source, args.dataset)
    completer = CachingCompleter(make_completer(config), path)
    return Cascade(config, completer=completer), completer


async def run_with_progress(cascade: Cascade, items: list[Item], args: argparse.Namespace) -> EvalRun:
    stages = [t.name for t in cascade.config.tiers] + ["cascade"]
    columns = (TextColumn("{task.description:>16}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with watching(Meter()) as meter, EvalProgress(meter, *columns, console=Console(stderr=True)) as bar:
        tasks = {s: bar.add_task(s, total=len(items)) for s in stages}
        return await evaluate(
            cascade,
            items,
            template=args.template,
            concurrency=args.concurrency,
            progress=lambda stage, n: bar.advance(tasks[stage], n),
        )


def run_eval(args: argparse.Namespace) -> int:
    from cascade.eval.analysis.tables import print_report
    from cascade.eval.data.logs import write_log

    if args.plot:
        require("plot", "--plot")
    if getattr(args, "executor", "local") == "ray":
        require("ray", "--executor ray")
    config = load_config(args.config)
    items = load_items(args)
    run, counts = _run_items(config, items, args)
    report = live_report(run, seed=args.seed)
    report["settings"] = {
        **report["settings"],
        "dataset": str(args.dataset),
        "seed": args.seed,
        "offset": args.offset,
        "limit": args.limit,
        **counts,
    }
    console = Console()
    print_report(report, console, explain=args.explain)
    _write(report, args.out, console)
    if args.log:
        write_log(run.log, args.log)
        console.print(f"log: {args.log}")
    if args.plot:
        from cascade.eval.analysis.plot import plot_report

        console.print(f"plot: {plot_report(report, args.plot)}")
    return 0


def _run_items(config: CascadeConfig, items: list[Item], args: argparse.Namespace) -> tuple[EvalRun, RunCounts]:
    """The evaluation on the chosen executor, and what the settings should record about it."""
    if getattr(args, "executor", "local") == "ray":
        from cascade.eval.live.ray_executor import evaluate_on_ray

        cache_file = args.cache or cache_path_for(config._source, args.dataset)
        run = evaluate_on_ray(config, items, template=args.template, cache=cache_file, address=args.ray_address)
        return run, {"executor": "ray"}
    cascade, cache = cached_cascade(config, args)
    run = asyncio.run(run_with_progress(cascade, items, args))
    return run, {"executor": "local", "cache_hits": cache.hits, "cache_misses": cache.misses}


def run_tune(args: argparse.Namespace) -> int:
    if getattr(args, "logs", None):
        from cascade.cli.tune_logs import run_tune_logs

        return run_tune_logs(args)
    if args.config is None or args.dataset is None:
        raise UserError("cascade tune needs --config and --dataset, or --logs LOG to search cascades over logged ones")
    if getattr(args, "reference", None) is not None or getattr(args, "min_agreement", None) is not None:
        from cascade.cli.label_free import run_tune_prompts

        return run_tune_prompts(args)
    config = load_config(args.config)
    items = load_items(args)
    tune_items, test_items = split(items, [args.tune_fraction, 1 - args.tune_fraction], seed=args.seed)
    cascade, cache = cached_cascade(config, args)
    console = Console()
    tune_run = asyncio.run(run_with_progress(cascade, tune_items, args))
    min_em = args.min_em
    if args.min_em_of_strongest:
        min_em = max(tier_em(tune_run, tier.name) for tier in config.tiers)
    value = getattr(args, "value_per_correct", None)
    value = 1.0 if value is None else value
    objective = Objective(value, args.price_per_token, args.use_cost, min_em)
    best, candidates = asyncio.run(search(config, cache, tune_run, objective, args.template))
    report = asyncio.run(held_out_report(config, best, cache, test_items, args))
    report["tuning"] = {
        "n_tune_items": len(tune_items),
        "n_test_items": len(test_items),
        "objective": objective.__dict__,
        "tiers": list(best.tiers),
        "thresholds": best.thresholds,
        "tune_em": best.em,
        "tune_tokens_per_item": best.tokens_per_item,
        "tune_cost_per_item": best.cost_per_item,
        "candidates_tried": len(candidates),
    }
    _tuning_table(report, console)
    from cascade.eval.analysis.tables import print_report

    print_report(report, console, explain=args.explain)
    _write(report, args.out, console)
    if args.write:
        held_out_em = report["cascade"]["em"] if report["cascade"] else 0.0
        original = safe_yaml.load(args.config).data
        header = (
            f"# Tuned by `cascade tune` on {len(tune_items)} items of {args.dataset.name} (seed {args.seed});\n"
            f"# held-out EM {held_out_em:.3f} on {len(test_items)} other items.\n"
        )
        body = yaml.safe_dump(tuned_yaml(original, best.tiers, best.thresholds), sort_keys=False, allow_unicode=True)
        args.write.write_text(header + body, encoding="utf-8")
        console.print(f"tuned config: {args.write}")
    return 0


def tier_em(run: EvalRun, tier: str) -> float:
    """EM of one tier alone over the run's items (its answer is logged for every item)."""
    correct = run.log.correct(tier)
    return float(correct.mean()) if correct.size else 0.0


async def held_out_report(
    config: CascadeConfig, best: Candidate, cache: CachingCompleter, items: list[Item], args: argparse.Namespace
) -> ReplayReport:
    """Every original tier alone (baselines) and the tuned cascade, on items tuning never saw."""
    baseline = await run_with_progress(Cascade(config, completer=cache), items, args)
    tuned = Cascade(with_thresholds(config, best.thresholds, best.tiers), completer=cache)
    results = await tuned.abatch([query_of(i, args.template) for i in items], concurrency=args.concurrency)
    return live_report(EvalRun(items, baseline.log, results, score_results(results, items)), seed=args.seed)


def _tuning_table(report: ReplayReport, console: Console) -> None:
    tuning = report["tuning"]
    table = Table(title="tuned thresholds (chosen on the tuning split only)")
    table.add_column("tier")
    table.add_column("threshold", justify="right")
    for tier in tuning["tiers"]:
        value = tuning["thresholds"].get(tier)
        table.add_row(tier, "—" if value is None else f"{value:.4f}")
    console.print(table)
    console.print(
        f"tuning split: {tuning['n_tune_items']} items, EM {tuning['tune_em']:.3f}, "
        f"{tuning['tune_tokens_per_item']:.1f} tokens/item; held-out split: {tuning['n_test_items']} items"
    )


def _write(report: ReplayReport, path: Path | None, console: Console) -> None:
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
        console.print(f"report: {path}")


__all__ = ["run_eval", "run_tune", "score"]
