"""Plugin registry: the config's `type:` names a registered factory.

Plugins register themselves on import with `@register(...)`; packages advertise their plugin
modules under the `cascade.plugins` entry-point group (this project's `routers` and
`verifiers` do so in pyproject.toml), which the registry loads once, lazily. The core never
imports a plugin by name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from importlib.metadata import entry_points
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ValidationError

from cascade.config import CascadeConfig, PluginSpec, config_error
from cascade.errors import UnknownPluginError

Kind = Literal["verifier", "router", "pre_router"]
ENTRY_POINT_GROUP = "cascade.plugins"

C = TypeVar("C", bound=BaseModel)
Factory = Callable[[Any, "BuildContext"], Any]


@dataclass(frozen=True)
class Plugin:
    kind: Kind
    name: str
    config_model: type[BaseModel]
    factory: Factory


_PLUGINS: dict[tuple[Kind, str], Plugin] = {}
_loaded = False


def register(
    kind: Kind, name: str, config_model: type[C]
) -> Callable[[Callable[[C, BuildContext], Any]], Callable[[C, BuildContext], Any]]:
    """Register `factory(config, ctx)` to build a `kind` plugin for `type: name`."""

    def decorator(factory: Callable[[C, BuildContext], Any]) -> Callable[[C, BuildContext], Any]:
        _PLUGINS[(kind, name)] = Plugin(kind, name, config_model, factory)
        return factory

    return decorator


def available(kind: Kind) -> list[str]:
    _load_plugins()
    return sorted(name for k, name in _PLUGINS if k == kind)


def _load_plugins() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        ep.load()


@dataclass(frozen=True)
class BuildContext:
    """Builds plugins from specs, validating each against its own model with located errors.

    A factory receives the context located at its own spec (`loc`), so a plugin that builds
    nested plugins (an ensemble's members) reports their errors where they sit in the file.
    Learning plugins read `variant`, `store` and `learn_on_build` (see `cascade.learning.online`).
    """

    config: CascadeConfig
    loc: tuple[str | int, ...] = ()
    variant: str | None = None  # the experiment variant being built (learners keep their state apart)
    store: str | None = None  # where learning plugins learn unless their own config names a store
    learn_on_build: bool = True  # False: learners load their saved state but learn nothing new at build

    def build(self, kind: Kind, spec: PluginSpec, loc: tuple[str | int, ...]) -> Any:
        _load_plugins()
        plugin = _PLUGINS.get((kind, spec.type))
        if plugin is None:
            known = ", ".join(available(kind)) or "none (no plugins registered; is the package installed?)"
            where = self.config.where((*loc, "type"))
            raise UnknownPluginError(f"{where}: unknown {kind} type {spec.type!r}; known: {known}")
        try:
            params = plugin.config_model.model_validate(spec.params())
        except ValidationError as exc:
            raise config_error(exc, source=self.config._source, lines=self.config._lines, prefix=loc) from None
        return plugin.factory(params, replace(self, loc=loc))

    def verifier(self, spec: PluginSpec, loc: tuple[str | int, ...]) -> Any:
        return self.build("verifier", spec, loc)
