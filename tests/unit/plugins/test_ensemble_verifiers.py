"""Which confidence an ensemble tier gets, and how each verifier behaves on it (or is refused)."""

from __future__ import annotations

import math

import pytest

from cascade import ConfigError, FakeReply
from cascade.config.schema import parse_config
from cascade.run.engine import Cascade
from tests.unit.ensemble_helpers import ENSEMBLE_TIER, STRONG_TIER, ensemble_cascade

AGREE = {"fake/a": FakeReply("Paris", logprobs=[-0.1]), "fake/b": FakeReply("Paris"), "fake/c": "Lyon"}


def test_without_any_verifier_ensembles_use_the_vote_and_single_tiers_logprobs() -> None:
    script = {**AGREE, "fake/strong": FakeReply("Paris", logprobs=[-0.01])}
    single = {**STRONG_TIER, "logprobs": True}
    router = {"type": "threshold", "threshold": 0.9}
    cascade, _ = ensemble_cascade(script, tiers=[ENSEMBLE_TIER, single], router=router)
    vote, strong = cascade.run("Capital of France?").attempts
    assert vote.confidence == pytest.approx(2 / 3) and vote.reason.startswith("vote:")
    assert strong.confidence == pytest.approx(math.exp(-0.01)) and "token probability" in strong.reason


def test_logprob_on_an_ensemble_is_a_soft_vote() -> None:
    cascade, _ = ensemble_cascade(AGREE, verifier={"type": "logprob", "missing": 0.5})
    vote = cascade.run("Capital of France?").attempts[0]
    # (p(a) + missing for b, which gave no logprobs) / 3 members; c disagrees and counts 0
    assert vote.confidence == pytest.approx((math.exp(-0.1) + 0.5) / 3)
    assert "2 agree" in vote.reason and "no logprobs from fake/b" in vote.reason


def test_agreement_and_format_judge_the_voted_answer() -> None:
    first = {"name": "first", "model": "fake/first", "max_tokens": 8, "logprobs": True, "verifier": {"type": "logprob"}}
    script = {**AGREE, "fake/first": FakeReply("paris", logprobs=[-3.0])}
    checks = [{"type": "agreement"}, {"type": "format", "kind": "nonempty"}]
    cascade, _ = ensemble_cascade(
        script, tiers=[first, ENSEMBLE_TIER], verifier={"type": "ensemble", "mode": "all", "members": checks}
    )
    result = cascade.run("Capital of France?")
    assert [a.decision for a in result.attempts] == ["escalate", "accept"]
    assert result.attempts[1].confidence == 1.0 and result.answer == "Paris"


def test_a_weighted_mix_of_vote_and_agreement() -> None:
    first = {"name": "first", "model": "fake/first", "max_tokens": 8, "verifier": {"type": "logprob"}}
    mixed = {"type": "ensemble", "mode": "weighted_mean", "members": [{"type": "vote"}, {"type": "agreement"}]}
    tier = {**ENSEMBLE_TIER, "verifier": mixed}
    script = {**AGREE, "fake/first": FakeReply("Lyon", logprobs=[-3.0])}
    cascade, _ = ensemble_cascade(script, tiers=[first, tier])
    vote = cascade.run("Capital of France?").attempts[1]
    assert vote.confidence == pytest.approx((2 / 3 + 0.0) / 2)


def test_self_verify_is_judged_by_the_member_that_gave_the_answer() -> None:
    tier = {**ENSEMBLE_TIER, "verifier": {"type": "self_verify"}}
    script = {
        "fake/a": "Lyon",
        "fake/b": [FakeReply("yes", match="Proposed answer"), FakeReply("Paris")],
        "fake/c": "Paris",
    }
    cascade, fake = ensemble_cascade(script, tiers=[tier, STRONG_TIER])
    vote = cascade.run("Capital of France?").attempts[0]
    judge = fake.calls[-1]
    assert vote.answer == "Paris" and vote.confidence == 1.0
    assert judge.model == "fake/b"  # the first member that voted for 'Paris'
    assert "Proposed answer: Paris" in judge.messages[0]["content"] and judge.input_price == 1e-6


@pytest.mark.parametrize(
    ("verifier", "where", "problem"),
    [
        ("verifier: {type: self_consistency}", "t.yaml:10: verifier", "self_consistency draws more samples"),
        (
            "verifier: {type: ensemble, members: [{type: logprob}, {type: self_consistency}]}",
            "t.yaml:10: verifier",
            "member 'self_consistency'",
        ),
    ],
)
def test_verifiers_that_cannot_judge_an_ensemble_are_config_errors(verifier: str, where: str, problem: str) -> None:
    text = (
        "tiers:\n"
        "  - name: one\n"
        "    model: fake/one\n"
        "  - name: vote\n"
        "    models:\n"
        "      - fake/a\n"
        "      - fake/b\n"
        "router: {type: threshold, threshold: 0.5}\n"
        "completer: {type: fake}\n"
        f"{verifier}\n"
    )
    with pytest.raises(ConfigError) as caught:
        Cascade(parse_config(text, source="t.yaml"))
    message = str(caught.value)
    assert message.startswith(where) and problem in message and "(tier 'vote')" in message


def test_vote_on_a_one_model_tier_is_a_config_error_at_the_tier() -> None:
    text = "tiers:\n  - name: one\n    model: fake/one\n    verifier: {type: vote}\n"
    with pytest.raises(ConfigError, match=r"t.yaml:4: tiers\[0\].verifier: verifier 'vote' scores an ensemble"):
        Cascade(parse_config(text, source="t.yaml"))
