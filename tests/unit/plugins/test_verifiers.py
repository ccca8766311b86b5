"""Logprob, format and agreement verifiers, and config validation of every verifier type."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pytest

import verifiers
from cascade.errors import ConfigError, UnknownPluginError
from cascade.protocols import VerifyContext
from cascade.types import Attempt, Completion
from tests.unit.verifier_helpers import TIER, NoJudge, build, run
from verifiers import AgreementVerifier, FormatVerifier, LogprobVerifier, normalise


async def _no_draw() -> tuple[Completion, str | None]:
    raise AssertionError("this verifier must not draw samples")


def make_ctx(
    answers: Sequence[str | None] = ("x",),
    *,
    logprobs: Sequence[float] | None = None,
    previous: Sequence[str | None] = (),
) -> VerifyContext:
    lps = tuple(logprobs) if logprobs is not None else None
    samples = [
        Completion(a or "", TIER.model, 5, 2, token_logprobs=lps if i == 0 else None) for i, a in enumerate(answers)
    ]
    attempts = [Attempt(tier=f"t{i}", model="m", answer=a, decision="escalate") for i, a in enumerate(previous)]
    return VerifyContext(
        query="q",
        tier=TIER,
        tier_index=len(attempts),
        samples=samples,
        answers=list(answers),
        previous=attempts,
        draw=_no_draw,
        judge=NoJudge(),
        extract=str,
    )


# logprob

LPS = [-0.1, -2.0, -0.5]


def test_logprob_min_is_default() -> None:
    verdict = run(build("logprob"), make_ctx(logprobs=LPS))
    assert verdict.confidence == pytest.approx(math.exp(-2.0))
    assert "min" in verdict.reason


def test_logprob_mean_and_geometric_mean() -> None:
    mean = run(LogprobVerifier("mean"), make_ctx(logprobs=LPS)).confidence
    geo = run(LogprobVerifier("geometric_mean"), make_ctx(logprobs=LPS)).confidence
    assert mean == pytest.approx(sum(math.exp(x) for x in LPS) / 3)
    assert geo == pytest.approx(math.exp(sum(LPS) / 3))
    assert geo < mean


def test_logprob_first_n_tokens_looks_only_at_the_answer() -> None:
    assert run(LogprobVerifier(first_n_tokens=1), make_ctx(logprobs=LPS)).confidence == pytest.approx(math.exp(-0.1))


def test_logprob_clips_to_one() -> None:
    assert run(LogprobVerifier(), make_ctx(logprobs=[1e-9, 0.0])).confidence == 1.0


@pytest.mark.parametrize("logprobs", [None, []])
def test_logprob_missing_is_explicit_not_confident(logprobs: list[float] | None) -> None:
    verdict = run(LogprobVerifier(), make_ctx(logprobs=logprobs))
    assert verdict.confidence == 0.0
    assert "no token logprobs" in verdict.reason
    assert run(build("logprob", missing=0.3), make_ctx(logprobs=logprobs)).confidence == 0.3


def test_logprob_uses_the_sample_of_the_voted_answer() -> None:
    ctx = make_ctx(["x", "y"], logprobs=[-3.0])
    ctx.samples[1] = Completion("y", TIER.model, 5, 1, token_logprobs=(-0.2,))
    voted = verifiers.with_answer(ctx, "y")
    assert run(LogprobVerifier(), voted).confidence == pytest.approx(math.exp(-0.2))


# format


@pytest.mark.parametrize(
    ("params", "answer", "passes"),
    [
        ({"pattern": r"\d+"}, "42", True),
        ({"pattern": r"\d+"}, "42a", False),
        ({"kind": "number"}, "-3.5", True),
        ({"kind": "number"}, "1,000", True),
        ({"kind": "number"}, "about 3", False),
        ({"kind": "yesno"}, "Yes", True),
        ({"kind": "yesno"}, "maybe", False),
        ({"kind": "choice"}, "B", True),
        ({"kind": "choice"}, "BB", False),
        ({"kind": "choice", "choices": ["red", "blue"]}, "Blue", True),
        ({"kind": "choice", "choices": ["red", "blue"]}, "green", False),
        ({"kind": "nonempty"}, "  ", False),
        ({"max_length": 3}, "abcd", False),
        ({"max_length": 3, "kind": "nonempty"}, "abc", True),
    ],
)
def test_format_rules(params: dict[str, Any], answer: str, passes: bool) -> None:
    verdict = run(build("format", **params), make_ctx([answer]))
    assert verdict.confidence == (1.0 if passes else 0.0)


def test_format_reason_names_the_failed_rule() -> None:
    verifier = FormatVerifier(pattern=r"[a-z]+", max_length=3)
    assert "does not match /[a-z]+/" in run(verifier, make_ctx(["AB"])).reason
    assert "longer than 3" in run(verifier, make_ctx(["abcd"])).reason


def test_format_none_answer_fails() -> None:
    verdict = run(FormatVerifier(), make_ctx([None]))
    assert verdict.confidence == 0.0 and "no answer" in verdict.reason


def test_format_config_errors() -> None:
    with pytest.raises(ConfigError, match="invalid regex"):
        build("format", pattern="(")
    with pytest.raises(ConfigError, match="kind: choice"):
        build("format", choices=["a"])


# agreement


def test_normalise() -> None:
    assert normalise("  The Answer! ") == "theanswer"
    assert normalise("3.5") != normalise("35")
    assert normalise("-5") != normalise("5")
    assert normalise("Paris.") == normalise("paris")


def test_agreement_with_previous() -> None:
    assert run(build("agreement"), make_ctx(["paris"], previous=["Paris."])).confidence == 1.0
    assert run(build("agreement"), make_ctx(["london"], previous=["Paris"])).confidence == 0.0
    # only the most recent answered attempt counts; unanswered attempts are skipped
    assert run(AgreementVerifier(), make_ctx(["rome"], previous=["rome", "paris", None])).confidence == 0.0


def test_agreement_any_and_all() -> None:
    ctx = make_ctx(["rome"], previous=["rome", "paris"])
    assert run(AgreementVerifier("any"), ctx).confidence == 1.0
    assert run(AgreementVerifier("all"), ctx).confidence == 0.0
    assert run(AgreementVerifier("all"), make_ctx(["Rome"], previous=["rome", "ROME"])).confidence == 1.0


def test_agreement_without_previous_uses_no_previous() -> None:
    verdict = run(AgreementVerifier(), make_ctx(["rome"], previous=[None]))
    assert verdict.confidence == 0.5 and "no earlier answer" in verdict.reason
    assert run(build("agreement", no_previous=0.2), make_ctx(["rome"])).confidence == 0.2
    assert run(AgreementVerifier(), make_ctx([None], previous=["rome"])).confidence == 0.0


# config validation for every type


@pytest.mark.parametrize(
    ("type_", "params"),
    [
        ("logprob", {}),
        ("self_consistency", {}),
        ("self_verify", {}),
        ("format", {}),
        ("agreement", {}),
        ("ensemble", {"members": [{"type": "logprob"}]}),
    ],
)
def test_unknown_field_is_a_located_config_error(type_: str, params: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=r"verifier\.bogus_field: unknown field"):
        build(type_, bogus_field=1, **params)
    assert build(type_, **params) is not None


@pytest.mark.parametrize(
    ("type_", "params", "message"),
    [
        ("logprob", {"aggregate": "max"}, "aggregate"),
        ("logprob", {"missing": 2.0}, "missing"),
        ("self_consistency", {"max_samples": 0}, "max_samples"),
        ("self_consistency", {"min_samples": 5, "max_samples": 3}, "min_samples"),
        ("self_consistency", {"stopping": {"rule": "beta", "windw": 3}}, r"stopping\.windw"),
        ("self_verify", {"prompt": "Is {query} right?"}, "answer"),
        ("agreement", {"against": "first"}, "against"),
        ("ensemble", {"members": []}, "members"),
        ("ensemble", {"members": [{"type": "logprob", "weight": 0}]}, "weight"),
    ],
)
def test_invalid_values_are_config_errors(type_: str, params: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build(type_, **params)


def test_every_type_is_registered() -> None:
    from cascade.registry import available

    assert {"logprob", "self_consistency", "self_verify", "format", "agreement", "ensemble"} <= set(
        available("verifier")
    )
    with pytest.raises(UnknownPluginError):
        build("no_such_verifier")
