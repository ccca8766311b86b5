"""Refuse a config whose models no provider can serve, or cannot reach, before any model is called.

Without this check an unknown provider prefix (`nosuchprovider/x`), a misspelt model
(`openai/gpt-4o-mnii`) or a local model that is not installed is found only inside the first
call: `cascade run` paid the other tiers and exited 1 with litellm's message, and `cascade serve`
started and answered every request with a 502. A hosted model whose key variable is unset failed
the same way, as litellm's `InternalServerError`. Problems are errors (the call cannot succeed)
or warnings (it may: a self-hosted endpoint's key may be optional; a model newer than litellm's
list may exist, and a tier that gives its `prices` does not need the list for its cost).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from cascade.errors import ConfigError

if TYPE_CHECKING:
    from cascade.config.schema import CascadeConfig, ModelSpec


@dataclass(frozen=True)
class Problem:
    """One thing wrong with how a config reaches a model: `file:line: field: message`."""

    where: str
    message: str
    severity: Literal["error", "warning"]
    kind: Literal["model", "key"]

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


def model_problems(config: CascadeConfig) -> list[Problem]:
    """Every tier's and ensemble member's model and key problems (a fake completer has none)."""
    if config.completer.type != "litellm":
        return []
    problems = []
    for where, spec in _specs(config):
        problems += _model_problems(where, spec)
        problems += _key_problems(where, spec)
    return list(dict.fromkeys(problems))


def _specs(config: CascadeConfig) -> Iterator[tuple[str, ModelSpec]]:
    for i, tier in enumerate(config.tiers):
        for j, spec in enumerate(tier.member_specs()):
            yield config.where(("tiers", i, "models", j) if tier.is_ensemble else ("tiers", i, "model")), spec


def _model_problems(where: str, spec: ModelSpec) -> list[Problem]:
    from cascade.completers.litellm_completer import model_problem
    from cascade.completers.model_names import unknown_model

    api_base = spec.resolved_api_base()
    routing = model_problem(spec.model, api_base)
    if routing:
        return [Problem(where, routing, "error", "model")]
    unknown = unknown_model(spec.model, api_base)
    if unknown is None:
        return []
    if spec.prices is not None:
        return [Problem(where, f"{unknown} (used anyway: the tier gives its prices)", "warning", "model")]
    return [Problem(where, f"{unknown}; a model newer than this list needs the tier's `prices:`", "error", "model")]


def _key_problems(where: str, spec: ModelSpec) -> list[Problem]:
    from cascade.completers.model_names import key_variable

    api_base = spec.resolved_api_base()
    if spec.api_key_env:
        if os.environ.get(spec.api_key_env):
            return []
        # a self-hosted endpoint's key may be optional; a provider's never is
        severity: Literal["error", "warning"] = "warning" if api_base else "error"
        return [Problem(where, f"api_key_env {spec.api_key_env} is not set", severity, "key")]
    needed = key_variable(spec.model, api_base)
    if needed and not os.environ.get(needed):
        return [Problem(where, f"{needed} is not set ({spec.model} reads its key from it)", "error", "key")]
    return []


def check_routable(configs: Iterable[CascadeConfig]) -> list[Problem]:
    """Raise a `ConfigError` listing the models nothing can serve; return the other problems
    (unset keys, models litellm does not list but priced by the tier) for the caller to show. Pass
    a cascade's `runnable_configs.values()`, which covers each experiment variant."""
    problems = list(dict.fromkeys(p for config in configs for p in model_problems(config)))
    errors = [p for p in problems if p.kind == "model" and p.severity == "error"]
    if errors:
        lines = [str(p) for p in errors]
        raise ConfigError("unknown model:\n  " + "\n  ".join(lines), problems=lines)
    return [p for p in problems if p not in errors]
