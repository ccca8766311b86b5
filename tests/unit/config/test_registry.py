"""The typed plugin seam: each kind is built by its own builder and checked against its protocol."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from pydantic import BaseModel

from cascade import Cascade, FakeCompleter
from cascade.completers.plugins import make_completer
from cascade.completers.wrapper import WrapperCompleter
from cascade.config.schema import CascadeConfig, PluginSpec, parse_config
from cascade.errors import PluginError, UnknownPluginError
from cascade.protocols import DecideContext, VerifyContext
from cascade.registry import _PLUGINS, BuildContext, available, register
from cascade.types import Decision, RoutePlan, Verdict

CONFIG = parse_config("name: seam\ntiers:\n  - {name: only, model: fake/x}\nrouter: {type: wrong_router}\n")


class Empty(BaseModel, extra="forbid"):
    pass


class SyncVerifier:
    def verify(self, ctx: VerifyContext) -> Verdict:
        return Verdict(1.0, "")


class AsyncRouter:
    async def decide(self, ctx: DecideContext) -> Decision:
        return Decision("accept", "")


class Planner:
    def plan(self, query: str, tiers: list[object]) -> RoutePlan:
        return RoutePlan()


@pytest.fixture
def scratch_plugins() -> Iterator[None]:
    """Plugins registered by a test are forgotten after it."""
    before = dict(_PLUGINS)
    yield
    _PLUGINS.clear()
    _PLUGINS.update(before)


def test_each_kind_has_its_builtin_plugins() -> None:
    assert {"fake", "litellm"} <= set(available("completer"))
    assert {"threshold", "adaptive", "bandit"} <= set(available("router"))
    assert {"features", "learned"} <= set(available("pre_router"))
    assert {"logprob", "vote", "format"} <= set(available("verifier"))


def test_completers_are_built_by_type() -> None:
    config = parse_config("tiers: [{name: a, model: m}]\ncompleter: {type: fake, replies: {m: [{text: hi}]}}\n")
    assert isinstance(make_completer(config), FakeCompleter)
    completer: object = Cascade(config).completer
    while isinstance(completer, WrapperCompleter):  # under the retrying and metering wrappers
        completer = completer.inner
    assert isinstance(completer, FakeCompleter)
    with pytest.raises(UnknownPluginError, match=r"completer.type: unknown completer type 'nope'; known: fake, lite"):
        make_completer(parse_config("tiers: [{name: a, model: m}]\ncompleter: {type: nope}\n"))


def test_a_factory_building_the_wrong_kind_is_an_error_naming_the_plugin(scratch_plugins: None) -> None:
    register("router", "wrong_router", Empty)(lambda config, ctx: Planner())
    with pytest.raises(PluginError) as caught:
        Cascade(CONFIG, completer=FakeCompleter({"fake/x": "4"}))
    message = str(caught.value)
    assert "<string>:4: router: router plugin 'wrong_router'" in message
    assert "returned Planner, which is not a Router: it has no decide() method" in message


@pytest.mark.parametrize(
    ("kind", "built", "problem"),
    [
        ("verifier", SyncVerifier(), "its verify() must be async"),
        ("router", AsyncRouter(), "its decide() must be a plain (not async) method"),
        ("pre_router", AsyncRouter(), "it has no plan() method"),
        ("completer", Planner(), "it has no complete() method"),
    ],
)
def test_every_kind_is_checked_against_its_protocol(
    scratch_plugins: None, kind: str, built: object, problem: str
) -> None:
    register(kind, "odd", Empty)(lambda config, ctx: built)  # type: ignore[arg-type]
    ctx = BuildContext(CascadeConfig.from_dict({"tiers": [{"name": "only", "model": "fake/x"}]}))
    with pytest.raises(PluginError, match=re.escape(problem)):
        ctx.build(kind, PluginSpec(type="odd"), (kind,))  # type: ignore[call-overload]


def test_the_right_kind_is_returned_as_built(scratch_plugins: None) -> None:
    planner = Planner()
    register("pre_router", "planner", Empty)(lambda config, ctx: planner)
    ctx = BuildContext(CascadeConfig.from_dict({"tiers": [{"name": "only", "model": "fake/x"}]}))
    assert ctx.pre_router(PluginSpec(type="planner")) is planner


def test_an_unknown_kind_cannot_be_registered() -> None:
    with pytest.raises(PluginError, match="unknown plugin kind 'ranker'"):
        register("ranker", "x", Empty)  # type: ignore[arg-type]
