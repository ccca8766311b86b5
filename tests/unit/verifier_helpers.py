"""Helpers shared by the verifier tests: a judge that must not be called, running and building verifiers."""

from __future__ import annotations

import asyncio
from typing import Any

from cascade.config.schema import CascadeConfig, PluginSpec, TierConfig
from cascade.protocols import Verifier, VerifyContext
from cascade.registry import BuildContext
from cascade.types import Completion, CompletionRequest, Verdict

TIER = TierConfig(name="small", model="fake/small")


class NoJudge:
    async def complete(self, request: CompletionRequest) -> Completion:
        raise AssertionError("this verifier must not call a judge")


def run(verifier: Verifier, ctx: VerifyContext) -> Verdict:
    return asyncio.run(verifier.verify(ctx))


def build(type_: str, **params: Any) -> Any:
    config = CascadeConfig.from_dict({"tiers": [{"name": "a", "model": "fake/a"}]})
    return BuildContext(config).build("verifier", PluginSpec(type=type_, **params), ("verifier",))
