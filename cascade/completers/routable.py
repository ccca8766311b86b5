"""Refuse a config whose model strings no provider can serve, before any model is called.

Without this check an unknown provider prefix (`nosuchprovider/x`) or a local model that is not
installed is found only inside the first call: `cascade run` paid the other tiers and exited 1 with
litellm's message, and `cascade serve` started and answered every request with a 502.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING

from cascade.errors import ConfigError

if TYPE_CHECKING:
    from cascade.config.schema import CascadeConfig


def check_models(config: CascadeConfig) -> None:
    """A `ConfigError` listing every tier or ensemble member whose model string cannot be routed."""
    from cascade.completers.litellm_completer import model_problem

    problems = []
    for i, tier in enumerate(config.tiers):
        for j, spec in enumerate(tier.member_specs()):
            problem = model_problem(spec.model, spec.resolved_api_base())
            loc = ("tiers", i, "models", j) if tier.is_ensemble else ("tiers", i, "model")
            if problem:
                problems.append(f"{config.where(loc)}: {problem}")
    if problems:
        raise ConfigError("unknown model:\n  " + "\n  ".join(problems), source=config._source, problems=problems)


def check_routable(configs: Iterable[CascadeConfig]) -> None:
    """`check_models` on every config that runs through litellm (a fake completer needs none); pass a
    cascade's `runnable_configs.values()`, which covers each experiment variant."""
    for config in configs:
        if config.completer.type == "litellm":
            check_models(config)


def unset_keys(configs: Iterable[CascadeConfig]) -> list[str]:
    """Where a config names an `api_key_env` that is not set: the provider then gets its own default
    key, or none, and fails with a message about a variable the user never named; worth a warning
    (not an error: a self-hosted endpoint's key may be optional)."""
    unset = []
    for config in configs:
        if config.completer.type != "litellm":
            continue
        for i, tier in enumerate(config.tiers):
            for j, spec in enumerate(tier.member_specs()):
                if spec.api_key_env and not os.environ.get(spec.api_key_env):
                    loc = ("tiers", i, "models", j) if tier.is_ensemble else ("tiers", i, "model")
                    unset.append(f"{config.where(loc)}: api_key_env {spec.api_key_env} is not set")
    return list(dict.fromkeys(unset))
