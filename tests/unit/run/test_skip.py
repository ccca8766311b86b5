"""Task-aware skipping: a pre-router rule names tiers not to call for a kind of query."""

from __future__ import annotations

import pytest

from cascade import Cascade, CascadeConfig, ConfigError, FakeCompleter, FakeReply

TIERS = [
    {"name": "tiny", "model": "tiny", "logprobs": True},
    {"name": "small", "model": "small", "logprobs": True},
    {"name": "big", "model": "big", "logprobs": True},
]
FAKE = {"tiny": FakeReply("yes", logprobs=[-2.0]), "small": FakeReply("no", logprobs=[-2.0]), "big": "no"}


def _cascade(rules: list[dict[str, object]]) -> tuple[Cascade, FakeCompleter]:
    config = CascadeConfig.from_dict(
        {
            "tiers": TIERS,
            "router": {"type": "threshold", "threshold": 0.5},
            "pre_router": {"type": "features", "rules": rules},
        }
    )
    fake = FakeCompleter(FAKE)
    return Cascade(config, completer=fake), fake


def test_skipped_tier_is_never_called_and_the_trace_says_why() -> None:
    rule = {"when": {"task": "yesno"}, "skip": ["small"], "why": "accepts 2% of yes/no items"}
    cascade, fake = _cascade([rule])
    result = cascade.run("Is the sky green?")
    assert [a.tier for a in result.attempts] == ["tiny", "big"]
    assert [c.model for c in fake.calls] == ["tiny", "big"]
    assert "skip small (accepts 2% of yes/no items)" in result.route_reason
    other = cascade.run("What is the capital of Peru")  # a factoid: no rule, every tier
    assert [a.tier for a in other.attempts] == ["tiny", "small", "big"]


def test_skipping_the_last_tiers_ends_the_cascade_at_the_last_called_one() -> None:
    cascade, _ = _cascade([{"when": {"task": "yesno"}, "skip": ["small", "big"]}])
    result = cascade.run("Is the sky green?")
    assert [a.tier for a in result.attempts] == ["tiny"]
    assert result.answer == "yes" and not result.accepted and result.final_tier == "tiny"
    assert result.attempts[0].decision == "stop"
    assert result.stop_reason == "the later tiers are skipped for this query"


def test_skipping_the_first_tier_starts_at_the_next() -> None:
    cascade, _ = _cascade([{"skip": ["tiny"]}])
    result = cascade.run("Is the sky green?")
    assert [a.tier for a in result.attempts] == ["small", "big"]
    assert "start at 'small'" in result.route_reason  # the first tier called, not the skipped one


def test_a_rule_may_not_skip_every_tier_or_an_unknown_one() -> None:
    with pytest.raises(ConfigError, match="may not skip every tier"):
        _cascade([{"skip": ["tiny", "small", "big"]}])
    with pytest.raises(ConfigError, match="unknown tier 'huge'"):
        _cascade([{"skip": ["huge"]}])
