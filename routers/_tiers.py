"""Checks that plugin fields naming tiers name real ones, so typos fail at load time, not mid-run."""

from __future__ import annotations

from collections.abc import Iterable

from cascade.errors import ConfigError
from cascade.registry import BuildContext

Loc = tuple[str | int, ...]


def check_tier_names(ctx: BuildContext, refs: Iterable[tuple[str, Loc]]) -> None:
    """Raise one ConfigError listing every `(tier name, field location)` that names no tier."""
    known = [tier.name for tier in ctx.config.tiers]
    problems = [
        f"{ctx.config.where(loc)}: unknown tier {name!r}; tiers are {', '.join(known)}"
        for name, loc in refs
        if name not in known
    ]
    if problems:
        message = "invalid cascade config:\n  " + "\n  ".join(problems)
        raise ConfigError(message, source=ctx.config._source, problems=problems)
