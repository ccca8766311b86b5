"""Command-line options that say how to read a log, shared by `replay`, `tune --logs` and `scorer train`:
list prices for logs without cost, few-shot overhead, RouteLLM's contaminated prompts, model names."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from cascade.errors import UserError

if TYPE_CHECKING:
    from cascade.eval.data.external import LogOptions, Price


def prices(specs: list[str]) -> dict[str, Price]:
    """`MODEL=IN,OUT` (USD per million tokens) per `--price`."""
    from cascade.eval.data.external import Price

    out = {}
    for spec in specs:
        model, _, values = spec.rpartition("=")
        try:
            inp, outp = (float(v) for v in values.split(","))
        except ValueError:
            raise UserError(f"--price wants MODEL=IN,OUT (USD per million tokens), got {spec!r}") from None
        out[model] = Price(inp, outp, "--price")
    return out


def log_options(args: argparse.Namespace) -> LogOptions:
    """The `read_log` options the command line asked for (only those it set)."""
    options: LogOptions = {}
    if getattr(args, "price", None) or getattr(args, "prompt_overhead_tokens", 0):
        options = {"prices": prices(args.price), "prompt_overhead_tokens": args.prompt_overhead_tokens}
    if getattr(args, "keep_contaminated", False):
        options["keep_contaminated"] = True
    return options


def model_map(specs: list[str]) -> dict[str, str]:
    """`LOG_NAME=MODEL` per `--model-map`: the litellm string a logged model stands for."""
    pairs = [spec.partition("=") for spec in specs]
    bad = [spec for spec, (name, eq, model) in zip(specs, pairs, strict=True) if not (name and eq and model)]
    if bad:
        raise UserError(f"--model-map wants LOG_NAME=MODEL, got {bad[0]!r}")
    return {name: model for name, _, model in pairs}
