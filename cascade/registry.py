"""Plugin registry: the config's `type:` names a registered factory, built into a typed plugin.

Plugins register themselves on import with `@register(kind, name, ConfigModel)`; packages advertise
their plugin modules under the `cascade.plugins` entry-point group (this project's `routers` and
`verifiers` do so in pyproject.toml), which the registry loads once, lazily, together with the
core's own completers. The core never imports a plugin by name.

Each kind has a typed builder on `BuildContext` (`verifier`, `router`, `pre_router`, `completer`,
`budget_policy`)
that checks what the factory returned against the kind's protocol, so a factory returning the
wrong kind of object is a `PluginError` naming the plugin when the cascade is built, not an
AttributeError in the middle of a run.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, replace
from importlib import import_module
from importlib.metadata import entry_points
from typing import Any, Literal, TypeVar, cast, overload

from pydantic import BaseModel, ValidationError

from cascade.config.schema import CascadeConfig, PluginSpec, config_error
from cascade.errors import PluginError, UnknownPluginError
from cascade.protocols import BudgetPolicy, Completer, PreRouter, Router, Stores, Verifier

Kind = Literal["verifier", "router", "pre_router", "completer", "budget_policy"]
ENTRY_POINT_GROUP = "cascade.plugins"
CORE_PLUGINS = ("cascade.completers.plugins", "cascade.token_budget.plugins")
"""The core's own plugin modules (the completers, the budget policies), loaded by name like any plugin package."""

C = TypeVar("C", bound=BaseModel)
P = TypeVar("P")
Loc = tuple[str | int, ...]
Factory = Callable[[Any, "BuildContext"], object]


@dataclass(frozen=True)
class Contract:
    """What a plugin of one kind must be: the protocol, and its one method (async or not)."""

    protocol: type
    method: str
    is_async: bool


CONTRACTS: dict[Kind, Contract] = {
    "verifier": Contract(Verifier, "verify", True),
    "router": Contract(Router, "decide", False),
    "pre_router": Contract(PreRouter, "plan", False),
    "completer": Contract(Completer, "complete", True),
    "budget_policy": Contract(BudgetPolicy, "allot", False),
}


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
) -> Callable[[Callable[[C, BuildContext], P]], Callable[[C, BuildContext], P]]:
    """Register `factory(config, ctx)` to build a `kind` plugin for `type: name`."""
    if kind not in CONTRACTS:
        raise PluginError(f"cannot register {name!r}: unknown plugin kind {kind!r}; one of {', '.join(CONTRACTS)}")

    def decorator(factory: Callable[[C, BuildContext], P]) -> Callable[[C, BuildContext], P]:
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
    for module in CORE_PLUGINS:
        import_module(module)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        ep.load()


def contract_problem(kind: Kind, built: object) -> str | None:
    """Why `built` is not a `kind` plugin (None when it is one)."""
    contract = CONTRACTS[kind]
    method = getattr(built, contract.method, None)
    if not callable(method):
        return f"it has no {contract.method}() method"
    if inspect.iscoroutinefunction(method) != contract.is_async:
        return f"its {contract.method}() must be {'async' if contract.is_async else 'a plain (not async) method'}"
    return None


@dataclass(frozen=True)
class BuildContext:
    """Builds plugins from specs, validating each against its own model with located errors.

    A factory receives the context located at its own spec (`loc`), so a plugin that builds
    nested plugins (an ensemble's members) reports their errors where they sit in the file.
    Learning plugins read `variant`, `store_access()` and `learn_on_build` (see `cascade.learning.online`);
    they never open a store themselves: whoever builds the cascade passes `stores`
    (`cascade.store.access.StoreAccess`), so the registry knows nothing of storage.
    """

    config: CascadeConfig
    loc: Loc = ()
    variant: str | None = None  # the experiment variant being built (learners keep their state apart)
    stores: Stores | None = None  # the cascade's store, for plugins that learn
    learn_on_build: bool = True  # False: learners load their saved state but learn nothing new at build

    def store_access(self) -> Stores:
        """The stores of a plugin that learns; a `PluginError` when the cascade was built without any."""
        if self.stores is None:
            raise PluginError(
                f"{self.config.where(self.loc)}: this plugin learns from a store, but the cascade was built "
                "without store access (pass stores=cascade.store.access.StoreAccess(...) to BuildContext)"
            )
        return self.stores

    def verifier(self, spec: PluginSpec, loc: Loc) -> Verifier:
        return self.build("verifier", spec, loc)

    def router(self, spec: PluginSpec, loc: Loc = ("router",)) -> Router:
        return self.build("router", spec, loc)

    def pre_router(self, spec: PluginSpec, loc: Loc = ("pre_router",)) -> PreRouter:
        return self.build("pre_router", spec, loc)

    def completer(self, spec: PluginSpec, loc: Loc = ("completer",)) -> Completer:
        return self.build("completer", spec, loc)

    def budget_policy(self, spec: PluginSpec, loc: Loc) -> BudgetPolicy:
        return self.build("budget_policy", spec, loc)

    @overload
    def build(self, kind: Literal["verifier"], spec: PluginSpec, loc: Loc) -> Verifier: ...
    @overload
    def build(self, kind: Literal["router"], spec: PluginSpec, loc: Loc) -> Router: ...
    @overload
    def build(self, kind: Literal["pre_router"], spec: PluginSpec, loc: Loc) -> PreRouter: ...
    @overload
    def build(self, kind: Literal["completer"], spec: PluginSpec, loc: Loc) -> Completer: ...
    @overload
    def build(self, kind: Literal["budget_policy"], spec: PluginSpec, loc: Loc) -> BudgetPolicy: ...

    def build(self, kind: Kind, spec: PluginSpec, loc: Loc) -> Verifier | Router | PreRouter | Completer | BudgetPolicy:
        """The `kind` plugin `spec` names, its fields validated and what it built checked against the kind."""
        plugin = self._plugin(kind, spec, loc)
        try:
            params = plugin.config_model.model_validate(spec.params())
        except ValidationError as exc:
            source, lines, model = self.config._source, self.config._lines, plugin.config_model
            raise config_error(exc, source=source, lines=lines, prefix=loc, model=model) from None
        built = plugin.factory(params, replace(self, loc=loc))
        problem = contract_problem(kind, built)
        if problem is not None:
            origin = f"{plugin.factory.__module__}.{plugin.factory.__qualname__}"
            raise PluginError(
                f"{self.config.where(loc)}: {kind} plugin {spec.type!r} ({origin}) returned "
                f"{type(built).__name__}, which is not a {CONTRACTS[kind].protocol.__name__}: {problem}"
            )
        return cast(Verifier | Router | PreRouter | Completer | BudgetPolicy, built)  # checked above

    def _plugin(self, kind: Kind, spec: PluginSpec, loc: Loc) -> Plugin:
        _load_plugins()
        plugin = _PLUGINS.get((kind, spec.type))
        if plugin is None:
            known = ", ".join(available(kind)) or "none (no plugins registered; is the package installed?)"
            where = self.config.where((*loc, "type"))
            raise UnknownPluginError(f"{where}: unknown {kind} type {spec.type!r}; known: {known}")
        return plugin
