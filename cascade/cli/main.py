"""`cascade` command line: run a query, validate a config, list local models."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.text import Text

from cascade._version import __version__
from cascade.config.schema import default_config_path
from cascade.errors import CascadeError, RunError, UserError

if TYPE_CHECKING:
    from cascade.run.engine import Cascade
    from cascade.store import Store
    from cascade.types import CascadeResult


# Commands whose parser and `run(args)` live in their own module of cascade.cli.
_COMMAND_MODULES = {
    "serve": "serve",
    "ab": "ab",
    "learn": "learn",
    "scorer": "scorer",
    "token-budget": "token_budget",
    "feedback": "feedback",
    "report": "report",
    "budget": "budget",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cascade", description="Cheap model first; escalate only when needed.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="answer one question and print the trace")
    run.add_argument("question", help="the question to answer (quote it)")
    run.add_argument("--config", "-c", type=Path, default=None, help="cascade YAML (default: configs/local.yaml)")
    run.add_argument("--json", action="store_true", help="print one JSON object instead of the trace")
    run.add_argument(
        "--store", "--dsn", metavar="DSN", help="record the run (SQLite path or postgresql:// DSN) for feedback"
    )
    run.add_argument("--tag", help="the query's context label (e.g. an app feature); learning routers learn per tag")
    run.add_argument("--user", help="who asks: an experiment that assigns by user keeps each user on one variant")
    validate = sub.add_parser(
        "validate", help="check a cascade config: fields, plugins, model names and the key variables they need"
    )
    validate.add_argument("config", type=Path, nargs="?", help="cascade YAML (or give it as --config)")
    validate.add_argument("--config", "-c", type=Path, dest="config_option", metavar="CONFIG", help="cascade YAML")
    validate.add_argument(
        "--skip-keys", action="store_true", help="do not require the API key variables (e.g. CI without secrets)"
    )
    sub.add_parser("models", help="list the local models and whether they are installed")
    from cascade.cli import ab as cli_ab
    from cascade.cli import budget as cli_budget
    from cascade.cli import eval_args as cli_args
    from cascade.cli import feedback as cli_feedback
    from cascade.cli import learn as cli_learn
    from cascade.cli import replay as cli_replay
    from cascade.cli import report as cli_report
    from cascade.cli import scorer as cli_scorer
    from cascade.cli import serve as cli_serve
    from cascade.cli import token_budget as cli_token_budget

    cli_serve.add_parser(sub)
    cli_args.add_parsers(sub)
    cli_replay.add_parser(sub)
    cli_feedback.add_parser(sub)
    cli_budget.add_parser(sub)
    cli_ab.add_parser(sub)
    cli_learn.add_parser(sub)
    cli_scorer.add_parser(sub)
    cli_report.add_parser(sub)
    cli_token_budget.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    err = Console(stderr=True)
    try:
        if args.command == "run":
            return _run(args)
        if args.command == "validate":
            return _validate(_validate_path(args), skip_keys=args.skip_keys)
        if args.command in ("eval", "tune", "replay"):
            return _evaluation(args)
        if args.command in _COMMAND_MODULES:
            module = importlib.import_module(f"cascade.cli.{_COMMAND_MODULES[args.command]}")
            return int(module.run(args))
        return _models()
    except UserError as exc:
        err.print(Text.assemble(("error: ", "bold red"), str(exc)), highlight=False, soft_wrap=True)
        return 2
    except CascadeError as exc:
        err.print(Text.assemble(("failed: ", "bold red"), str(exc)), highlight=False, soft_wrap=True)
        return 1


def _run(args: argparse.Namespace) -> int:
    """Everything that can be refused (question, config, store) is checked before a model is paid;
    the answer is printed before it is recorded, so a store that fails afterwards loses nothing."""
    from cascade.cli.progress import run_status
    from cascade.completers.routable import check_routable
    from cascade.config.schema import load_config
    from cascade.io.text import check_utf8
    from cascade.run.engine import Cascade

    check_utf8(args.question, "the question")
    config = load_config(args.config or default_config_path())
    store = _open_store(args.store) if args.store else None
    try:
        cascade = Cascade(config, learning_store=args.store)
        for problem in check_routable(cascade.runnable_configs.values()):
            Console(stderr=True).print(Text.assemble(("warning: ", "yellow"), str(problem)), highlight=False)
        with run_status(progress_console()):
            result = cascade.run(args.question, tag=args.tag, user=args.user)
        result = _answer_approvals(cascade, result, ask=sys.stdin.isatty())
        _print_result(result, cascade.config.name, as_json=args.json)
        if store is not None:
            _record(store, result, cascade.config.name)
    finally:
        if store is not None:
            store.close()
    return 1 if result.error else 0


def progress_console() -> Console:
    """Where `cascade run` shows which tier it calls while it waits (stderr, so `--json` stays clean)."""
    return Console(stderr=True)


def _answer_approvals(cascade: Cascade, result: CascadeResult, *, ask: bool) -> CascadeResult:
    """A tier with `approve: true` is asked about on the terminal (on stderr, so `--json` stays
    clean); with no terminal to ask, it is refused and the best answer so far stands."""
    from rich.prompt import Confirm

    from cascade.run.trace import money

    while result.awaiting_approval is not None and result.thread_id:
        request = result.awaiting_approval
        cost = f", at most {money(request.max_cost_usd)}" if request.max_cost_usd is not None else ""
        question = f"Call tier '{request.tier}' ({request.model}{cost})? Best answer so far: {request.best_answer!r}"
        approve = ask and Confirm.ask(question, default=False, console=Console(stderr=True))
        note = f"{'approved' if approve else 'refused'} on the terminal" if ask else "no terminal to ask"
        result = cascade.resume(result.thread_id, approve=approve, note=note, variant=result.variant)
    return result


def _open_store(dsn: str) -> Store:
    """The store, checked writable: a run it cannot record must not be paid for."""
    from cascade.store import open_store

    store = open_store(dsn)
    try:
        store.check_writable()
    except BaseException:
        store.close()
        raise
    return store


def _record(store: Store, result: CascadeResult, config_name: str) -> None:
    try:
        store.record_run(result, config_name=config_name)
    except Exception as exc:  # the answer is already printed; say why it was not kept
        raise RunError(f"answered, but the run was not recorded in {store!r}: {type(exc).__name__}: {exc}") from exc


def _print_result(result: CascadeResult, title: str, *, as_json: bool) -> None:
    from cascade.run.trace import Trace

    if as_json:
        sys.stdout.write(json.dumps(result.to_json_dict()) + "\n")
        sys.stdout.flush()
    else:
        if result.variant:
            title += f" [{result.experiment}: {result.variant}]"
        Console().print(Trace(result, title=title))


def _validate_path(args: argparse.Namespace) -> Path:
    if (args.config is None) == (args.config_option is None):
        raise UserError("cascade validate needs one config: cascade validate FILE (or --config FILE)")
    return Path(args.config or args.config_option)


def _validate(path: Path, *, skip_keys: bool = False) -> int:
    """Everything `cascade run` would refuse, refused here, without calling a model. Unset key
    variables of hosted providers are errors (the calls cannot succeed) unless `skip_keys`."""
    from cascade.completers.routable import check_routable
    from cascade.run.engine import Cascade

    cascade = Cascade.from_yaml(path)
    problems = check_routable(cascade.runnable_configs.values())
    errors = [p for p in problems if p.severity == "error" and not (skip_keys and p.kind == "key")]
    err = Console(stderr=True)
    for problem in problems:
        if problem not in errors:
            err.print(Text.assemble(("warning: ", "yellow"), str(problem)), highlight=False)
    if errors:
        lines = "\n  ".join(str(p) for p in errors)
        keys = any(p.kind == "key" for p in errors)
        hint = "\n(set them, or check the rest without them: cascade validate --skip-keys)" if keys else ""
        raise UserError(f"{path}: not ready to run:\n  {lines}{hint}")
    for name, config in cascade.runnable_configs.items():
        tiers = " → ".join(f"{t.name} ({t.label})" for t in config.tiers)
        variant = f" [variant {name}]" if name else ""
        Console().print(Text.assemble(("ok ", "green"), f"{path}{variant}: {tiers}"), highlight=False)
    return 0


def _evaluation(args: argparse.Namespace) -> int:
    from cascade.cli import eval as cli_eval
    from cascade.cli import replay as cli_replay

    if args.command == "replay":
        return cli_replay.run(args)
    return cli_eval.run_eval(args) if args.command == "eval" else cli_eval.run_tune(args)


def _models() -> int:
    from cascade.local.catalog import models_table

    Console().print(models_table())
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
