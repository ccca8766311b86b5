"""`cascade budget`: what each budget account (an API key of `cascade serve`) has spent, and a reset.

    cascade budget [--store DSN] [--json]            every account: tokens, dollars, calls, held now
    cascade budget --reset ACCOUNT [--store DSN]     forget an account's spend (a new billing period)

Accounts are named as the server logs them: an API key's id (`key-` and 8 hex digits), never the
key. Limits are the server's flags (`--key-max-tokens`, `--key-max-cost-usd`), not stored here.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from cascade.cli.types import add_store
from cascade.errors import UserError
from cascade.store import open_store
from cascade.store.budgets import BudgetStore


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `budget` on the `cascade` command's subparsers."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "budget", help="show what each API key's budget has spent (cascade serve --store), or reset one"
    )
    parser.add_argument("--reset", metavar="ACCOUNT", help="forget this account's spend (e.g. key-1a2b3c4d)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_store(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    store = open_store(args.store, must_exist=True)
    try:
        if not isinstance(store, BudgetStore):
            raise UserError(f"{store!r} keeps no budgets")
        if args.reset:
            if not store.reset_budget(args.reset):
                raise UserError(f"no budget account {args.reset!r} in {store!r}")
            Console().print(Text.assemble(("reset ", "green"), args.reset), highlight=False)
            return 0
        _show(store.budget_accounts(), as_json=args.json)
        return 0
    finally:
        store.close()


def _show(rows: list[tuple[str, Any]], *, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps({name: asdict(spend) for name, spend in rows}) + "\n")
        return
    table = Table("account", "tokens", "USD", "calls", "held tokens", "held USD")
    for name, spend in rows:
        held = (str(spend.held_tokens), f"{spend.held_usd:.6g}")
        table.add_row(name, str(spend.tokens), f"{spend.usd:.6g}", str(spend.calls), *held)
    Console().print(table)
