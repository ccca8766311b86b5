"""Self-consistency with adaptive stopping, and ensembles that pass a voted answer on."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from cascade.errors import BudgetExceededError, ConfigError
from cascade.protocols import VerifyContext
from cascade.types import Completion, Usage, Verdict
from tests.unit.verifier_helpers import TIER, NoJudge, build, run
from verifiers import EnsembleVerifier, FormatVerifier, LogprobVerifier, Member, SelfConsistencyVerifier, majority
from verifiers.ensemble import Mode
from verifiers.stopping import stop_never, stop_when_window


class Scripted:
    """A VerifyContext whose draw() returns scripted answers and appends them, as the engine does."""

    def __init__(self, first: Sequence[str | None], draws: Sequence[str | Exception | None] = ()) -> None:
        self.script = list(draws)
        self.calls = 0
        samples = [Completion(a or "", TIER.model, 5, 1) for a in first]
        self.ctx = VerifyContext(
            query="q",
            tier=TIER,
            tier_index=0,
            samples=samples,
            answers=list(first),
            previous=[],
            draw=self.draw,
            judge=NoJudge(),
            extract=str,
        )

    async def draw(self) -> tuple[Completion, str | None]:
        self.calls += 1
        item = self.script.pop(0)
        if isinstance(item, Exception):
            raise item
        completion = Completion(item or "", TIER.model, 5, 1, token_logprobs=(-0.05,))
        self.ctx.samples.append(completion)
        self.ctx.answers.append(item)
        return completion, item


class Fixed:
    """A member with a fixed verdict."""

    def __init__(self, confidence: float, usage: Usage | None = None, **kwargs: Any) -> None:
        self.verdict = Verdict(confidence, f"fixed {confidence}", usage=usage or Usage(), **kwargs)
        self.seen: str | None = None

    async def verify(self, ctx: VerifyContext) -> Verdict:
        self.seen = ctx.answer
        return self.verdict


# self-consistency


def test_beta_stops_after_four_agreeing_samples() -> None:
    s = Scripted(["x"], ["x"] * 10)
    verdict = run(build("self_consistency"), s.ctx)
    assert s.calls == 3  # [x,x,x] gives 15/16 < 0.95, [x,x,x,x] gives 31/32
    assert verdict.answer == "x" and verdict.confidence == 1.0
    assert verdict.samples_used == 4 and verdict.samples_saved == 4
    assert verdict.details["votes"] == {"x": 4}
    assert verdict.details["beta_posterior"] == pytest.approx(31 / 32)


def test_beta_needs_more_samples_when_they_disagree() -> None:
    s = Scripted(["x"], ["y"] + ["x"] * 10)
    verdict = run(build("self_consistency", max_samples=10), s.ctx)
    # top/runner-up (5,1) after 6 samples gives 120/128 = 0.9375; (6,1) after 7 gives 247/256 >= 0.95
    assert verdict.samples_used == 7 and verdict.samples_saved == 3
    assert verdict.details["votes"] == {"x": 6, "y": 1}
    assert verdict.details["beta_posterior"] == pytest.approx(247 / 256)
    assert verdict.confidence == pytest.approx(6 / 7)


def test_fixed_rule_draws_up_to_max_samples() -> None:
    s = Scripted(["x"], ["x"] * 10)
    verdict = run(build("self_consistency", max_samples=5, stopping={"rule": "fixed"}), s.ctx)
    assert s.calls == 4 and verdict.samples_used == 5 and verdict.samples_saved == 0


def test_window_rule_stops_when_the_last_samples_agree() -> None:
    s = Scripted(["x"], ["y", "x", "x", "x", "x"])
    verdict = run(build("self_consistency", stopping={"rule": "window", "window": 3}), s.ctx)
    assert verdict.samples_used == 5 and verdict.samples_saved == 3


def test_min_samples_is_respected() -> None:
    s = Scripted(["x"], ["x"] * 5)
    assert run(SelfConsistencyVerifier(5, 1, rule=lambda a: True), s.ctx).samples_used == 1
    s = Scripted(["x"], ["x"] * 5)
    verdict = run(SelfConsistencyVerifier(5, 3, rule=lambda a: True), s.ctx)
    assert verdict.samples_used == 3 and verdict.samples_saved == 2


def test_ties_go_to_the_first_answer_and_none_never_wins() -> None:
    assert majority(["y", "x", "x", "y"]) == ("y", 2)
    assert majority([None, None, "x"]) == ("x", 1)
    assert majority([None, None]) == (None, 0)
    s = Scripted([None], [None, "x"])
    verdict = run(SelfConsistencyVerifier(3, 3, rule=stop_never()), s.ctx)
    assert verdict.answer == "x" and verdict.confidence == 1.0 and verdict.details["unanswered"] == 2


def test_all_none_answers_give_zero_confidence() -> None:
    verdict = run(SelfConsistencyVerifier(2, 2), Scripted([None], [None]).ctx)
    assert verdict.answer is None and verdict.confidence == 0.0 and "no sample answered" in verdict.reason


def test_a_failed_draw_ends_sampling_without_crashing() -> None:
    s = Scripted(["x"], ["y", BudgetExceededError("token budget exhausted")])
    verdict = run(SelfConsistencyVerifier(8, 2, rule=stop_never()), s.ctx)
    assert verdict.samples_used == 2 and verdict.samples_saved == 6
    assert "token budget exhausted" in verdict.reason and verdict.answer == "x"


# ensemble


def test_weighted_mean() -> None:
    ens = EnsembleVerifier([Member("a", Fixed(1.0), weight=3), Member("b", Fixed(0.0), weight=1)])
    verdict = run(ens, Scripted(["x"]).ctx)
    assert verdict.confidence == pytest.approx(0.75)
    assert [m["confidence"] for m in verdict.details["members"]] == [1.0, 0.0]


@pytest.mark.parametrize(("mode", "expected"), [("all", 0.0), ("any", 1.0), ("majority", 2 / 3)])
def test_vote_modes(mode: Mode, expected: float) -> None:
    members = [Member("a", Fixed(0.9)), Member("b", Fixed(0.6), threshold=0.5), Member("c", Fixed(0.6), threshold=0.7)]
    verdict = run(EnsembleVerifier(members, mode), Scripted(["x"]).ctx)
    assert verdict.confidence == pytest.approx(expected)
    assert [m["vote"] for m in verdict.details["members"]] == [True, True, False]


def test_all_mode_passes_when_every_member_clears_its_threshold() -> None:
    members = [Member("a", Fixed(0.9)), Member("b", Fixed(0.3), threshold=0.2)]
    assert run(EnsembleVerifier(members, "all"), Scripted(["x"]).ctx).confidence == 1.0


def test_usage_and_samples_are_summed_from_members() -> None:
    members = [
        Member("a", Fixed(1.0, Usage(10, 1, 0.01), samples_used=3, samples_saved=5)),
        Member("b", Fixed(1.0, Usage(20, 2, 0.02))),
    ]
    verdict = run(EnsembleVerifier(members), Scripted(["x"]).ctx)
    assert (verdict.usage.prompt_tokens, verdict.usage.completion_tokens) == (30, 3)
    assert verdict.usage.cost_usd == pytest.approx(0.03)
    assert verdict.samples_used == 3 and verdict.samples_saved == 5


def test_voted_answer_is_what_later_members_see() -> None:
    s = Scripted(["x"], ["y", "y"])
    later = Fixed(1.0)
    members = [
        Member("self_consistency", SelfConsistencyVerifier(3, 3, rule=stop_when_window(5))),
        Member("format", FormatVerifier(pattern="y")),
        Member("logprob", LogprobVerifier()),
        Member("fixed", later),
    ]
    verdict = run(EnsembleVerifier(members, "all"), s.ctx)
    assert later.seen == "y" and verdict.answer == "y"
    assert verdict.confidence == 1.0  # the format rule saw "y", the logprob rule the sample that said "y"
    assert verdict.details["members"][2]["confidence"] == pytest.approx(0.951, abs=1e-3)
    assert s.ctx.answers == ["x", "y", "y"]  # draws still land in the engine's lists


def test_ensemble_builds_nested_members_from_config() -> None:
    ens = build(
        "ensemble",
        mode="all",
        members=[
            {"type": "self_consistency", "max_samples": 3, "stopping": {"rule": "fixed"}},
            {"type": "format", "kind": "number", "threshold": 1.0},
        ],
    )
    verdict = run(ens, Scripted(["7"], ["7", "8"]).ctx)
    assert verdict.answer == "7" and verdict.confidence == 1.0 and verdict.samples_used == 3
    verdict = run(ens, Scripted(["n/a"], ["n/a", "8"]).ctx)
    assert verdict.answer == "n/a" and verdict.confidence == 0.0


def test_ensemble_member_config_errors_are_located() -> None:
    with pytest.raises(ConfigError, match=r"verifier\.members\[1\]\.bogus: unknown field"):
        build("ensemble", members=[{"type": "logprob"}, {"type": "format", "bogus": 1}])
    with pytest.raises(ConfigError, match=r"members\[0\]\.threshold"):
        build("ensemble", members=[{"type": "logprob", "threshold": 2}])
