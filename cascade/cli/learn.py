"""`cascade learn`: batch (re)training of a cascade's learners from the store, outside the server.

    cascade learn [--config FILE ...] [--store DSN] [--reset] [--limit N] [--wait-s S] [--json]

Each learner (`adaptive`/`bandit` router, `learned` pre-router) of each config catches up with every
labelled run stored beyond its saved state, in steps of `--limit`, each saved before the next.
`--reset` discards the saved state and relearns from the first labelled run, e.g. after changing a
learner's settings. It takes the learner's lease, so it never learns alongside a serving process
(which then adopts the result); if one holds it, it waits up to `--wait-s`, then says who does.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from cascade.cli.types import add_store
from cascade.errors import UserError
from cascade.learning.online import DEFAULT_LIMIT, OnlineLearner, catch_up, holder_id
from cascade.store import Store, open_store


@dataclass(frozen=True)
class Learned:
    """One learner's batch run: how many records it read and the state it left."""

    config: str
    learner: str
    learned: int
    cursor: int | None
    version: int


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "learn", help="(re)train a cascade's learning routers from the store's labelled runs"
    )
    parser.add_argument("--config", "-c", type=Path, action="append", help="cascade YAML, repeatable")
    add_store(parser)
    parser.add_argument("--reset", action="store_true", help="discard the saved state and relearn from scratch")
    parser.add_argument("--limit", type=int, default=DEFAULT_LIMIT, help="labelled runs per saved step")
    parser.add_argument("--wait-s", type=float, default=0.0, help="wait this long for a serving learner's lease")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser


def run(args: argparse.Namespace) -> int:
    from cascade.config.schema import default_config_path, load_config
    from cascade.run.engine import Cascade

    if args.limit < 1 or args.wait_s < 0:
        raise UserError("--limit must be at least 1 and --wait-s at least 0")
    done: list[Learned] = []
    for path in args.config or [default_config_path()]:
        cascade = Cascade(load_config(path), learning_store=args.store, learn_on_build=False)
        learners = cascade.learners()
        if not learners:
            raise UserError(f"{path}: nothing to learn (no adaptive/bandit router or learned pre-router)")
        done += [_learn(cascade.config.name, learner, args) for learner in learners]
    if args.json:
        sys.stdout.write(json.dumps([asdict(d) for d in done]) + "\n")
    else:
        Console().print(_table(done))
    return 0


def _learn(config_name: str, learner: OnlineLearner, args: argparse.Namespace) -> Learned:
    store = open_store(learner.store_dsn)  # resolved when the cascade was built with learning_store=args.store
    holder, lease = f"cascade-learn:{holder_id()}", f"learn:{learner.state_key}"
    try:
        _take(store, lease, holder, args.wait_s)
        try:
            learned = 0
            if args.reset:
                first = learner.advance(None, store, args.limit)
                store.put_state(learner.state_key, first.state)
                learned = first.learned
            learned += catch_up(learner, store, args.limit)
        finally:
            store.release_lease(lease, holder)
        entry = store.get_state_entry(learner.state_key)
    finally:
        store.close()
    cursor = entry.value.get("cursor", entry.value.get("labels_seq")) if entry else None
    return Learned(config_name, learner.state_key, learned, cursor, entry.version if entry else 0)


def _take(store: Store, lease: str, holder: str, wait_s: float) -> None:
    """The learner's lease for this batch, or a UserError naming the process that holds it."""
    deadline = time.monotonic() + wait_s
    while not store.acquire_lease(lease, holder, ttl_s=max(60.0, wait_s)):
        if time.monotonic() >= deadline:
            raise UserError(
                f"{lease} is held by {store.lease_holder(lease)} (a serving process learns it already); "
                "stop it, serve with --no-learn, or wait with --wait-s"
            )
        time.sleep(0.5)


def _table(done: list[Learned]) -> Table:
    table = Table("config", "learner", "learned", "cursor", "state version", title="cascade learn")
    for d in done:
        table.add_row(d.config, d.learner, str(d.learned), str(d.cursor), str(d.version))
    return table
