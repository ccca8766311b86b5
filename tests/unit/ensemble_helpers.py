"""A cascade with an ensemble tier on the fake completer, shared by the ensemble tests."""

from __future__ import annotations

from typing import Any

from cascade import Cascade, CascadeConfig, FakeCompleter

PRICES = {"input_per_token": 1e-6, "output_per_token": 2e-6}
ENSEMBLE_TIER: dict[str, Any] = {
    "name": "vote",
    "models": ["fake/a", "fake/b", {"model": "fake/c", "prices": {"input_per_token": 1e-5, "output_per_token": 2e-5}}],
    "max_tokens": 16,
    "stop": ["\n"],
    "logprobs": True,
    "prompt": {"system": "Answer briefly."},
    "prices": PRICES,
}
STRONG_TIER: dict[str, Any] = {"name": "strong", "model": "fake/strong", "max_tokens": 64, "prices": PRICES}


async def no_sleep(_seconds: float) -> None:
    return None


def ensemble_cascade(
    script: dict[str, Any], *, tiers: list[dict[str, Any]] | None = None, **overrides: Any
) -> tuple[Cascade, FakeCompleter]:
    """vote (fake/a, fake/b, fake/c) → strong, threshold 0.6, no retry waits."""
    config = CascadeConfig.from_dict(
        {
            "name": "ens",
            "tiers": tiers or [ENSEMBLE_TIER, STRONG_TIER],
            "router": {"type": "threshold", "threshold": 0.6},
            "retry": {"attempts": 2, "initial_wait_s": 0, "max_wait_s": 0},
            **overrides,
        }
    )
    fake = FakeCompleter({"fake/strong": "strong answer", **script})
    return Cascade(config, completer=fake, sleep=no_sleep), fake
