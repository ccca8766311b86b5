"""`cascade serve --config FILE [--config FILE2 ...]`: the cascades over HTTP, on loopback by default.

Each config is served under its `name`. API keys come from `CASCADE_API_KEYS`; binding to a
non-loopback address without keys is refused, since anyone who can reach it could spend money.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cascade.cli.types import float_range, int_range, non_negative_int, port, positive_float, positive_int
from cascade.errors import UserError
from cascade.extras import require
from cascade.serve.background import KEEP_ALIVE_S
from cascade.serve.http import HEADER_TIMEOUT_ENV, HEADER_TIMEOUT_S, MAX_HEADER_BYTES, uvicorn_options
from cascade.serve.limits import BODY_TIMEOUT_S

if TYPE_CHECKING:
    from cascade.serve.settings import ServeSettings

DEFAULT_HOST = "127.0.0.1"


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add `serve` to the `cascade` command's subparsers."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "serve", help="serve cascades over an OpenAI-compatible HTTP API"
    )
    add_arguments(parser)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--config", "-c", type=Path, action="append", help="cascade YAML, repeatable (default: configs/local.yaml)")
    add("--host", default=DEFAULT_HOST, help="address to bind (default: 127.0.0.1)")
    add("--port", type=port, default=8000, help="port to bind, 1..65535 (default: 8000)")
    add("--max-concurrency", type=positive_int, default=16, help="runs in progress at once")
    add("--max-queue", type=non_negative_int, default=64, help="requests waiting for a slot before 429s")
    add("--max-body-bytes", type=positive_int, default=1_000_000, help="larger request bodies get 413")
    add("--max-header-bytes", type=int_range(1024), default=MAX_HEADER_BYTES, help="larger request heads get 431")
    add(
        "--header-timeout-s",
        type=positive_float,
        default=HEADER_TIMEOUT_S,
        help="a request head must arrive within it (408)",
    )
    add(
        "--body-timeout-s",
        type=positive_float,
        default=BODY_TIMEOUT_S,
        help="a request body must arrive within it (408)",
    )
    add("--max-tokens", type=positive_int, default=4096, help="largest max_tokens a request may ask for")
    add("--key-max-tokens", type=positive_int, default=None, help="token budget per API key")
    add("--key-max-cost-usd", type=positive_float, default=None, help="dollar budget per API key")
    add(
        "--key-budget-wait-s",
        type=float_range(0.0, inclusive=True),
        default=30.0,
        help="how long a request may wait for budget its key's calls in flight hold, before a 429",
    )
    add(
        "--cooldown-failures",
        type=non_negative_int,
        default=3,
        help="failures in a row before a model cools down (0: never)",
    )
    add("--cooldown-s", type=positive_float, default=30.0, help="how long a failing model is skipped")
    add("--store", "--dsn", metavar="DSN", default=None, help="record every run here and accept POST /v1/feedback")
    add("--store-timeout-s", type=positive_float, default=5.0, help="longest a store call may take (then: outage)")
    add(
        "--store-outage",
        choices=["spool", "refuse"],
        default="spool",
        help="while the store is down: answer and spool the runs (written when it is back), or refuse with 503",
    )
    add("--spool-dir", default=None, help="where runs wait for the store (default: beside a SQLite store)")
    add(
        "--feedback-per-minute",
        type=positive_int,
        default=60,
        help="feedback events one API key may post in any 60 s; more get 429 (default: 60)",
    )
    add("--log-level", default="info", choices=["debug", "info", "warning", "error"], help="the server's log level")
    add("--keep-alive", type=positive_int, default=KEEP_ALIVE_S, help="seconds an idle connection is kept open")
    add("--workers", type=positive_int, default=1, help="serving processes sharing the port and the store")
    add("--learn-interval-s", type=positive_float, default=5.0, help="how often learners sync with the store")
    add("--no-learn", dest="learn", action="store_false", help="do not learn from feedback while serving")


def check_exposure(host: str, has_keys: bool) -> None:
    if has_keys:
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        raise UserError(f"refusing to serve on {host} without API keys: set CASCADE_API_KEYS or bind to 127.0.0.1")


def check_shared_budgets(workers: int, store: str | None, settings: ServeSettings) -> None:
    """Key budgets kept in memory would be one per worker: N workers could spend N times the limit."""
    if workers > 1 and store is None and (settings.key_max_tokens or settings.key_max_cost_usd):
        raise UserError(
            f"--workers {workers} with --key-max-tokens/--key-max-cost-usd needs --store DSN: without a store "
            "each worker keeps its own budget, so the workers together could spend the limit once each"
        )


def run(args: argparse.Namespace) -> int:
    require("serve", "cascade serve")
    import uvicorn

    from cascade.config.schema import default_config_path
    from cascade.serve.settings import ServeSettings
    from cascade.serve.worker import SPEC_ENV, ServeSpec, build_app

    settings = ServeSettings.checked(
        max_concurrency=args.max_concurrency,
        max_queue=args.max_queue,
        max_body_bytes=args.max_body_bytes,
        max_header_bytes=args.max_header_bytes,
        header_timeout_s=args.header_timeout_s,
        body_timeout_s=args.body_timeout_s,
        max_tokens=args.max_tokens,
        key_max_tokens=args.key_max_tokens,
        key_max_cost_usd=args.key_max_cost_usd,
        key_budget_wait_s=args.key_budget_wait_s,
        store_timeout_s=args.store_timeout_s,
        store_outage=args.store_outage,
        spool_dir=args.spool_dir,
        feedback_per_minute=args.feedback_per_minute,
        learn=args.learn,
        learn_interval_s=args.learn_interval_s,
    )
    check_exposure(args.host, bool(settings.api_keys))
    check_shared_budgets(args.workers, args.store, settings)
    spec = ServeSpec(
        configs=[Path(p).resolve() for p in (args.config or [default_config_path()])],
        settings=settings.model_dump(),
        store=args.store,
        cooldown_failures=args.cooldown_failures,
        cooldown_s=args.cooldown_s,
    )
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.log_level != "debug":
        logging.getLogger("LiteLLM").setLevel(logging.WARNING)  # one line per provider call otherwise
    if not settings.api_keys:
        logging.getLogger("cascade.serve").warning("no API keys set (CASCADE_API_KEYS): anyone on loopback may call")
    app = build_app(spec)  # in the parent too: a bad config or store fails here, once, with exit 2
    os.environ[HEADER_TIMEOUT_ENV] = str(settings.header_timeout_s)  # read by the protocol, in each worker too
    options: dict[str, Any] = {"host": args.host, "port": args.port, "timeout_keep_alive": args.keep_alive}
    options |= uvicorn_options(max_header_bytes=settings.max_header_bytes, log_level=args.log_level)
    if args.workers == 1:
        uvicorn.run(app, **options)
        return 0
    os.environ[SPEC_ENV] = spec.to_env()
    uvicorn.run("cascade.serve.worker:app_from_env", factory=True, workers=args.workers, **options)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m cascade.serve ...`, until `cascade serve` is wired into the main CLI."""
    parser = argparse.ArgumentParser(prog="cascade serve", description="Serve cascades over HTTP.")
    add_arguments(parser)
    try:
        return run(parser.parse_args(argv))
    except UserError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
