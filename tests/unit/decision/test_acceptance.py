"""One acceptance rule for the live router and the offline replays, with one default threshold."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cascade.config.schema import CascadeConfig
from cascade.config.thresholds import DEFAULT_THRESHOLD, ThresholdSettings
from cascade.decision.acceptance import accepts, stopping_tier
from cascade.protocols import DecideContext
from cascade.types import Verdict
from routers.threshold import ThresholdConfig, ThresholdRouter

TIERS = [{"name": "small", "model": "fake/small"}, {"name": "large", "model": "fake/large"}]


def test_ties_accept_and_no_answer_never_does() -> None:
    assert accepts(0.7, 0.7) and not accepts(0.69, 0.7)
    assert not accepts(None, 0.0)
    assert accepts(np.array([0.7, 0.69, math.nan]), 0.7).tolist() == [True, False, False]


def test_stopping_tier_is_the_first_gate_that_accepts_else_the_final_tier() -> None:
    confidence = np.array([[0.9, 0.9], [0.2, 0.8], [0.2, 0.1], [math.nan, 0.95]])
    assert stopping_tier(confidence, 0.8).tolist() == [0, 1, 2, 1]
    assert stopping_tier(confidence, [0.95, 0.05]).tolist() == [1, 1, 1, 1]
    assert stopping_tier(np.zeros((3, 0)), 0.5).tolist() == [0, 0, 0]


def test_the_live_router_decides_as_the_replay_rule_on_every_confidence() -> None:
    tier = CascadeConfig.from_dict({"tiers": TIERS}).tiers[0]
    router = ThresholdRouter(0.5, {"small": 0.73})
    rng = np.random.default_rng(0)
    confidences = [*rng.random(200), 0.73, 0.7299999, 0.0, 1.0]
    for confidence in confidences:
        for answer in ("Paris", None):
            ctx = DecideContext(
                query="q", tier=tier, tier_index=0, n_tiers=2, verdict=Verdict(float(confidence), ""), answer=answer
            )
            live = router.decide(ctx).action == "accept"
            offline = bool(accepts(np.array([confidence if answer is not None else math.nan]), 0.73)[0])
            assert live == offline == accepts(confidence if answer is not None else None, 0.73)


def test_one_default_threshold() -> None:
    config = CascadeConfig.from_dict({"tiers": TIERS})
    assert config.router.params() == {"threshold": DEFAULT_THRESHOLD}
    assert ThresholdConfig().threshold == ThresholdRouter().threshold == DEFAULT_THRESHOLD


def test_tuned_settings_keep_only_the_named_tiers() -> None:
    settings = ThresholdSettings(threshold=0.6, per_tier={"small": 0.7, "gone": 0.9})
    tuned = settings.tuned({"mid": 0.8}, ["small", "mid", "large"])
    assert (tuned.threshold, tuned.per_tier) == (0.6, {"small": 0.7, "mid": 0.8})
    assert tuned.for_tier("large") == 0.6 and tuned.for_tier("mid") == 0.8
    with pytest.raises(ValueError, match="less than or equal to 1"):
        ThresholdSettings(per_tier={"small": 1.5})
