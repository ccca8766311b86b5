"""`cascade report`: is an audited config keeping its promise? Agreement with the strongest tier and what it costs.

    cascade report --config FILE [--store DSN] [--since 24h | 2026-12-01T00:00] [--json]

Reads the runs and reference pairs the config's server (`cascade serve --store DSN`) recorded; see
`cascade.audit.report`. Wire with `cli_report.add_parser(sub)` and dispatch `command == "report"`.
"""

from __future__ import annotations

import argparse
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from cascade.audit.report import VariantReport, promise_report
from cascade.cli.types import add_store
from cascade.errors import UserError

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "report", help="an audited config's agreement with its strongest tier, cost ratio and audit spend"
    )
    add = parser.add_argument
    add("--config", "-c", type=Path, required=True, help="the cascade YAML (its name and audit: block)")
    add_store(parser)
    add("--since", help="only runs recorded since then: an ISO time (UTC unless it says) or 30m, 24h, 7d ago")
    add("--json", action="store_true", help="print JSON instead of a table")
    return parser


def since_time(text: str | None, now: datetime | None = None) -> str | None:
    """`--since` as the stored timestamps' ISO form (UTC, microseconds), or None."""
    if text is None:
        return None
    found = _RELATIVE.match(text.strip())
    if found:
        moment = (now or datetime.now(UTC)) - timedelta(**{_UNITS[found.group(2)]: float(found.group(1))})
    else:
        try:
            moment = datetime.fromisoformat(text.strip())
        except ValueError:
            why = "give an ISO time (2026-12-01T08:00) or an age such as 30m, 24h, 7d"
            raise UserError(f"--since {text!r}: {why}") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def run(args: argparse.Namespace) -> int:
    from cascade.config.schema import load_config
    from cascade.store import open_store

    config = load_config(args.config)
    since = since_time(args.since)
    store = open_store(args.store, must_exist=True)
    try:
        reports = promise_report(store, config, since)
    finally:
        store.close()
    if args.json:
        print(json.dumps({"config": config.name, "since": since, "variants": [r.to_json() for r in reports]}))
        return 0
    console = Console()
    if not reports:
        console.print(f"no runs of {config.name!r} recorded" + (f" since {since}" if since else ""))
        return 0
    for report in reports:
        console.print(_table(config.name, config.tiers[-1].name, report, since))
    return 0


def _table(name: str, reference: str, r: VariantReport, since: str | None) -> Table:
    title = f"{name}{'@' + r.variant if r.variant else ''}: agreement with {reference!r}"
    title += f" since {since}" if since else ""
    table = Table(title=title, show_header=False)
    a = r.agreement
    verdict = {True: "holds", False: "BROKEN", None: "not yet proven"}[r.promise_holds]
    rows = [
        ("runs / answers", f"{r.runs} / {r.answers}"),
        ("agreement (always-valid 95%)", f"{a.estimate:.3f} [{a.low:.3f}, {a.high:.3f}]"),
        ("promise", "none set" if r.target is None else f"≥ {r.target:.3f}: {verdict}"),
        ("cost vs the strongest tier on every run", "n/a" if r.cost_ratio is None else f"{r.cost_ratio:.3f}×"),
        ("escalation rate / served by the strongest tier", f"{r.escalation_rate:.3f} / {r.served_by_strongest:.3f}"),
        ("spend: runs / audits (audits charged to no key)", f"${r.runs_usd:.4g} / ${r.audits_usd:.4g}"),
        ("audits", ", ".join(f"{k} {v}" for k, v in r.audits.items()) + f"; unresolved {r.unresolved}"),
    ]
    for tier, t in r.tiers.items():
        audited = f"{t.audited_agree}/{t.audited} audited agree" if t.audited else "no audit verdicts"
        rows.append((f"tier {tier!r}", f"{audited}; {t.escalated_agree}/{t.escalated} escalated answers agreed"))
    for key, value in rows:
        table.add_row(key, value)
    return table
