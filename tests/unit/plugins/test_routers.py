"""Routers and pre-routers, built through the registry as a config would build them."""

from __future__ import annotations

from typing import Any

import pytest

import routers  # noqa: F401  registers the plugins even without installed entry points
from cascade.config.schema import CascadeConfig, PluginSpec
from cascade.errors import ConfigError
from cascade.protocols import DecideContext, PreRouter, Router
from cascade.registry import BuildContext
from cascade.store.access import StoreAccess
from cascade.types import Verdict
from routers import FeaturesPreRouter, ThresholdRouter, length_scale, query_features

TIERS = [
    {"name": "small", "model": "fake/small", "max_tokens": 100},
    {"name": "medium", "model": "fake/medium", "max_tokens": 200},
    {"name": "large", "model": "fake/large", "max_tokens": 400},
]
CHOICES = "Which animal is a mammal?\nA) shark\nB) whale\nC) trout"
LONG = " ".join(["The committee weighed several competing proposals before reaching a verdict."] * 8)


def _ctx() -> BuildContext:
    return BuildContext(CascadeConfig.from_dict({"tiers": TIERS}), stores=StoreAccess())


def router(**fields: Any) -> ThresholdRouter:
    built = _ctx().build("router", PluginSpec(type="threshold", **fields), ("router",))
    assert isinstance(built, ThresholdRouter) and isinstance(built, Router)
    return built


def pre_router(**fields: Any) -> FeaturesPreRouter:
    built = _ctx().build("pre_router", PluginSpec(type="features", **fields), ("pre_router",))
    assert isinstance(built, FeaturesPreRouter) and isinstance(built, PreRouter)
    return built


def decide_ctx(confidence: float, tier: int = 0, answer: str | None = "42") -> DecideContext:
    config = CascadeConfig.from_dict({"tiers": TIERS})
    return DecideContext(
        query="What is 40+2?",
        tier=config.tiers[tier],
        tier_index=tier,
        n_tiers=len(TIERS),
        verdict=Verdict(confidence=confidence, reason="test"),
        answer=answer,
    )


def plan(r: FeaturesPreRouter, query: str) -> Any:
    return r.plan(query, list(CascadeConfig.from_dict({"tiers": TIERS}).tiers))


# --- threshold router ---------------------------------------------------------------------------


def test_confidence_equal_to_threshold_accepts() -> None:
    decision = router(threshold=0.7).decide(decide_ctx(0.7))
    assert decision.action == "accept"
    assert decision.threshold == 0.7
    assert decision.reason == "confidence 0.70 >= threshold 0.70"


def test_confidence_just_below_threshold_escalates() -> None:
    decision = router(threshold=0.7).decide(decide_ctx(0.6999))
    assert decision.action == "escalate"
    assert decision.reason == "confidence 0.6999 < threshold 0.7000"


def test_reason_uses_two_decimals() -> None:
    assert router(threshold=0.7).decide(decide_ctx(0.62)).reason == "confidence 0.62 < threshold 0.70"


def test_default_threshold_is_half() -> None:
    r = router()
    assert r.threshold_for("small") == 0.5
    assert r.decide(decide_ctx(0.5)).action == "accept"


def test_per_tier_overrides_threshold() -> None:
    r = router(threshold=0.5, per_tier={"small": 0.9})
    assert r.threshold_for("small") == 0.9
    assert r.threshold_for("medium") == 0.5
    assert r.decide(decide_ctx(0.8, tier=0)).action == "escalate"
    assert r.decide(decide_ctx(0.8, tier=1)).action == "accept"


def test_last_tier_still_compares() -> None:
    decision = router(threshold=0.7).decide(decide_ctx(0.1, tier=2))
    assert decision.action == "escalate"


def test_no_answer_escalates_even_when_confident() -> None:
    decision = router(threshold=0.1).decide(decide_ctx(1.0, answer=None))
    assert (decision.action, decision.reason, decision.threshold) == ("escalate", "no usable answer", 0.1)


def test_unknown_tier_in_per_tier_is_config_error() -> None:
    with pytest.raises(ConfigError, match=r"router\.per_tier\.huge.*unknown tier 'huge'"):
        router(per_tier={"huge": 0.9})


def test_unknown_router_field_is_config_error() -> None:
    with pytest.raises(ConfigError, match=r"thresold.*unknown field"):
        router(thresold=0.7)


def test_threshold_out_of_range_is_config_error() -> None:
    with pytest.raises(ConfigError, match=r"router\.threshold"):
        router(threshold=1.5)


def test_subclass_overrides_threshold_for_only() -> None:
    class Stricter(ThresholdRouter):
        def threshold_for(self, tier_name: str) -> float:
            return 0.95

    decision = Stricter(0.5).decide(decide_ctx(0.9))
    assert (decision.action, decision.threshold) == ("escalate", 0.95)


# --- query features -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "task"),
    [
        ("What is 12+30?", "arithmetic"),
        ("Tom has 3 apples and buys 4 more. How many apples does he have?", "arithmetic"),
        # word problems: long, or without a quantity word or operator, are still arithmetic
        ("Bill pays $8 a month for 6 months, then $12 a month. " * 6 + "How much do 2 years cost?", "arithmetic"),
        ("Three people divided $1920. The second took $80 more. Calculate the share of the first.", "arithmetic"),
        ("A plague infects ten people. Each infects six others a day. How many after three days?", "arithmetic"),
        ("Who won the 2014 World Cup final in 2014?", "factoid"),  # two numbers, but no quantity asked
        ("Is the sky blue?", "yesno"),
        ("The sky scatters blue light most. " * 12 + "\n\nQuestion: is the sky blue?", "yesno"),
        ("True or false: water boils at 100 C at sea level.", "yesno"),
        (CHOICES, "multiple_choice"),
        ("Pick one: (A) red (B) blue", "multiple_choice"),
        (LONG, "reasoning_long"),
        ("Explain why the sky is blue.", "reasoning_long"),
        ("Write a Python function that reverses a list.", "code"),
        ("Who wrote Hamlet?", "factoid"),
        ("Translate hello into French", "other"),
        ("Plan A. Then B. Done.", "other"),
    ],
)
def test_task_of_query(query: str, task: str) -> None:
    assert query_features(query)["task"] == task


def test_features_of_arithmetic_query() -> None:
    features = query_features("What is 12+30?")
    assert features == {
        "chars": 14,
        "words": 3,
        "sentences": 1,
        "digits": 4,
        "numbers": 2,
        "has_math": True,
        "has_question_mark": True,
        "question_word": "what",
        "task": "arithmetic",
    }


def test_features_are_deterministic() -> None:
    assert query_features(LONG) == query_features(LONG)
    assert query_features("")["words"] == 0


# --- features pre-router ------------------------------------------------------------------------


def test_default_plan_starts_at_first_tier_with_tier_budgets() -> None:
    route = plan(pre_router(), "Who wrote Hamlet?")
    assert route.start_tier == 0
    assert route.max_tokens == {"small": 100, "medium": 200, "large": 400}
    assert route.features["task"] == "factoid"
    assert route.reason == "no rule matched → start at 'small'"


def test_start_tier_by_name_and_reason() -> None:
    r = pre_router(
        rules=[
            {"when": {"task": "code"}, "start_tier": "large"},
            {"when": {"task": "arithmetic"}, "start_tier": "medium"},
        ]
    )
    route = plan(r, "What is 12+30?")
    assert route.start_tier == 1
    assert route.reason == "rule 2 (task=arithmetic) → start at 'medium'"


def test_first_matching_rule_wins() -> None:
    r = pre_router(
        rules=[
            {"when": {"task": ["arithmetic", "yesno"], "max_words": 5}, "start_tier": "medium"},
            {"when": {"task": "arithmetic"}, "start_tier": "large"},
            {"start_tier": "small"},
        ]
    )
    assert plan(r, "What is 12+30?").start_tier == 1
    assert plan(r, "Please tell me what you get when you add 12+30 together?").start_tier == 2
    assert plan(r, "Who wrote Hamlet?").reason == "rule 3 (always) → start at 'small'"


def test_word_bounds_and_pattern() -> None:
    r = pre_router(
        rules=[
            {"when": {"pattern": "(?i)capital of"}, "start_tier": "medium"},
            {"when": {"min_words": 50}, "start_tier": "large"},
        ]
    )
    assert plan(r, "What is the Capital of France?").start_tier == 1
    assert plan(r, LONG).start_tier == 2
    assert plan(r, "Who wrote Hamlet?").start_tier == 0


def test_hyphenated_task_name_is_accepted() -> None:
    r = pre_router(rules=[{"when": {"task": "reasoning-long"}, "start_tier": "large"}])
    assert plan(r, LONG).start_tier == 2


def test_token_scale_and_explicit_max_tokens() -> None:
    r = pre_router(rules=[{"when": {"task": "arithmetic"}, "token_scale": 0.5, "max_tokens": {"large": 64}}])
    route = plan(r, "What is 12+30?")
    assert route.max_tokens == {"small": 50, "medium": 100, "large": 64}
    assert route.reason == "rule 1 (task=arithmetic) → start at 'small', tokens x0.5, max_tokens large=64"


def test_scale_with_length_grows_budgets() -> None:
    r = pre_router(scale_with_length=True, base_words=10, max_scale=3.0)
    assert plan(r, "Who wrote Hamlet?").max_tokens["small"] == 100
    route = plan(r, " ".join(["word"] * 20))
    assert route.max_tokens == {"small": 200, "medium": 400, "large": 800}
    assert "tokens x2.00 for 20 words" in route.reason
    assert plan(r, LONG).max_tokens["small"] == 300


def test_length_scale_formula() -> None:
    assert length_scale(10) == 1.0
    assert length_scale(75) == 1.5
    assert length_scale(1000) == 4.0


def test_unknown_start_tier_is_config_error() -> None:
    with pytest.raises(ConfigError, match=r"pre_router\.rules\[1\]\.start_tier.*unknown tier 'xl'"):
        pre_router(rules=[{"start_tier": "small"}, {"start_tier": "xl"}])


def test_unknown_tier_in_max_tokens_is_config_error() -> None:
    with pytest.raises(ConfigError, match=r"pre_router\.rules\[0\]\.max_tokens\.xl"):
        pre_router(rules=[{"max_tokens": {"xl": 10}}])


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"when": {"task": "poetry"}}, r"rules\[0\]\.when\.task.*unknown task 'poetry'"),
        ({"when": {"pattern": "("}}, r"rules\[0\]\.when\.pattern.*invalid regex"),
        ({"when": {"min_words": 9, "max_words": 3}}, r"rules\[0\]\.when.*min_words must not exceed"),
        ({"token_scale": 0}, r"rules\[0\]\.token_scale"),
        ({"start": "small"}, r"rules\[0\]\.start.*unknown field"),
    ],
)
def test_invalid_rules_are_config_errors(rule: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        pre_router(rules=[rule])
