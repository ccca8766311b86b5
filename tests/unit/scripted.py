"""A scripted verifier for engine tests: confidence per tier, registered like any plugin."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from cascade import CascadeConfig, FakeCompleter, FakeReply, VerifyContext, register
from cascade.run.engine import Cascade
from cascade.types import Verdict


class ScriptedConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    confidence: dict[str, float]


class ScriptedVerifier:
    def __init__(self, confidence: dict[str, float]):
        self.confidence = confidence

    async def verify(self, ctx: VerifyContext) -> Verdict:
        return Verdict(self.confidence[ctx.tier.name], reason=f"scripted {ctx.tier.name}")


@register("verifier", "scripted", ScriptedConfig)
def _make(config: ScriptedConfig, _ctx: Any) -> ScriptedVerifier:
    return ScriptedVerifier(config.confidence)


TIERS = [
    {
        "name": "small",
        "model": "fake/small",
        "max_tokens": 16,
        "prices": {"input_per_token": 1e-7, "output_per_token": 2e-7},
    },
    {
        "name": "medium",
        "model": "fake/medium",
        "max_tokens": 32,
        "prices": {"input_per_token": 1e-6, "output_per_token": 2e-6},
    },
    {
        "name": "large",
        "model": "fake/large",
        "max_tokens": 64,
        "prices": {"input_per_token": 1e-5, "output_per_token": 2e-5},
    },
]


def make_cascade(
    confidence: dict[str, float],
    threshold: float = 0.7,
    script: dict[str, Any] | None = None,
    **overrides: Any,
) -> tuple[Cascade, FakeCompleter]:
    config = CascadeConfig.from_dict(
        {
            "tiers": TIERS,
            "verifier": {"type": "scripted", "confidence": confidence},
            "router": {"type": "threshold", "threshold": threshold},
            "retry": {"attempts": 3, "initial_wait_s": 0, "max_wait_s": 0},
            **overrides,
        }
    )
    fake = FakeCompleter(script or {"fake/small": "4", "fake/medium": "5", "fake/large": FakeReply("6")})

    async def no_sleep(_seconds: float) -> None:
        return None

    return Cascade(config, completer=fake, sleep=no_sleep), fake
