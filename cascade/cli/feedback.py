"""`cascade feedback`: record a verdict on a run, or list the feedback a run has received.

    cascade feedback RUN_ID (--up | --down | --correct TEXT | --label TEXT) [--user U] [--store DSN]
    cascade feedback --list RUN_ID [--json] [--store DSN]

Wire with `cli_feedback.add_parser(sub)` and dispatch `command == "feedback"` to `cli_feedback.run(args)`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from cascade.cli.types import add_store
from cascade.errors import UserError
from cascade.store import FeedbackKind, FeedbackRecord, RunRecord, Store, open_store
from cascade.store.rows import STORED_ATTEMPT_FIELDS


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `feedback` on the `cascade` command's subparsers."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "feedback", help="record a thumbs up/down, a correction or a gold label on a run, or list a run's feedback"
    )
    parser.add_argument("run_id", nargs="?", help="the run's id (CascadeResult.run_id, shown by `cascade run --json`)")
    verdict = parser.add_mutually_exclusive_group()
    verdict.add_argument("--up", action="store_true", help="the answer was right")
    verdict.add_argument("--down", action="store_true", help="the answer was wrong")
    verdict.add_argument("--correct", metavar="TEXT", help="the answer should have been TEXT (a user's correction)")
    verdict.add_argument("--label", metavar="TEXT", help="the gold answer is TEXT (a reviewer's label)")
    verdict.add_argument("--list", metavar="RUN_ID", dest="list_run", help="show the run and its feedback")
    parser.add_argument("--user", help="who gave the feedback")
    parser.add_argument("--json", action="store_true", help="with --list: print JSON instead of a table")
    add_store(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    """Record or list feedback; 0 on success, UserError on a bad request (the CLI prints it)."""
    if args.list_run:
        if args.run_id:
            raise UserError("give the run id once: `cascade feedback --list RUN_ID`")
        return _with_store(args.store, lambda store: _list(store, args.list_run, as_json=args.json))
    if not args.run_id:
        raise UserError("which run? `cascade feedback RUN_ID --up` (or `--list RUN_ID`)")
    kind, value = verdict(args)
    return _with_store(args.store, lambda store: _add(store, args.run_id, kind, value, args.user))


def verdict(args: argparse.Namespace) -> tuple[FeedbackKind, str | None]:
    """The feedback kind and value the flags ask for."""
    if args.up:
        return "thumbs_up", None
    if args.down:
        return "thumbs_down", None
    if args.correct is not None:
        return "correction", args.correct
    if args.label is not None:
        return "label", args.label
    raise UserError("say what the feedback is: --up, --down, --correct TEXT or --label TEXT")


def _with_store(dsn: str | None, action: Callable[[Store], int]) -> int:
    store = open_store(dsn, must_exist=True)
    try:
        return action(store)
    finally:
        store.close()


def _add(store: Store, run_id: str, kind: FeedbackKind, value: str | None, user: str | None) -> int:
    feedback_id = store.add_feedback(run_id, kind=kind, value=value, user=user)
    detail = f" {value!r}" if value is not None else ""
    Console().print(Text.assemble(("recorded ", "green"), f"feedback #{feedback_id}: {kind}{detail} on run {run_id}"))
    return 0


def _list(store: Store, run_id: str, *, as_json: bool) -> int:
    record = store.get_run(run_id)
    if record is None:
        raise UserError(f"no run {run_id!r} in the store")
    events = store.feedback_for(run_id)
    if as_json:
        stored = set(STORED_ATTEMPT_FIELDS)
        run = asdict(record) | {"attempts": [a.model_dump(mode="json", include=stored) for a in record.attempts]}
        sys.stdout.write(json.dumps({"run": run, "feedback": [asdict(e) for e in events]}) + "\n")
        return 0
    console = Console()
    console.print(_summary(record), highlight=False)
    console.print(_table(events) if events else Text("no feedback yet", style="dim"))
    return 0


def _summary(record: RunRecord) -> Text:
    state = "accepted" if record.accepted else "not accepted"
    return Text.assemble(
        (f"run {record.run_id}", "bold"),
        f"  {record.created_at}  config {record.config_name}" + (f" / {record.variant}" if record.variant else ""),
        f"\nquery: {record.query}\nanswer: {record.answer}  ({state}, final tier {record.final_tier}, "
        f"{record.total_tokens} tokens, ${record.total_cost_usd:.6f})",
    )


def _table(events: list[FeedbackRecord]) -> Table:
    table = Table("id", "kind", "value", "user", "created_at")
    for e in events:
        table.add_row(str(e.id), e.kind, e.value or "", e.user or "", e.created_at)
    return table
