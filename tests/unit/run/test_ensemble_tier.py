"""Ensemble tiers in the engine: concurrent members, the vote, confidence, usage, failures and budgets."""

from __future__ import annotations

import asyncio

import pytest

from cascade import Completion, CompletionRequest, FakeCompleter, FakeReply
from cascade.io.conversation import conversation_of
from tests.unit.ensemble_helpers import ENSEMBLE_TIER, STRONG_TIER, ensemble_cascade


def reply(text: str, prompt: int = 10, completion: int = 2, **kw: object) -> FakeReply:
    return FakeReply(text, prompt_tokens=prompt, completion_tokens=completion, **kw)  # type: ignore[arg-type]


class Barrier:
    """Lets no call finish until `n` calls have started: members called one by one would time out here."""

    def __init__(self, inner: FakeCompleter, n: int):
        self.inner, self.n, self.started = inner, n, 0
        self.all_started = asyncio.Event()

    async def complete(self, request: CompletionRequest) -> Completion:
        self.started += 1
        if self.started >= self.n:
            self.all_started.set()
        await asyncio.wait_for(self.all_started.wait(), timeout=10)
        return await self.inner.complete(request)


def test_members_are_called_concurrently_with_the_tiers_settings() -> None:
    cascade, fake = ensemble_cascade({"fake/a": "Paris", "fake/b": "Paris", "fake/c": "Lyon"})
    barrier = Barrier(fake, 3)
    cascade.graph.tiers[0].completer = barrier  # under the tier, in place of the retrying wrapper
    result = cascade.run("Capital of France?")
    assert barrier.started == 3 and result.answer == "Paris"
    calls = list(fake.calls)
    assert [c.model for c in calls] == ["fake/a", "fake/b", "fake/c"]
    assert all(c.messages == calls[0].messages and c.messages[0]["content"] == "Answer briefly." for c in calls)
    assert {(c.max_tokens, c.stop, c.logprobs) for c in calls} == {(16, ("\n",), True)}
    assert [c.input_price for c in calls] == [1e-6, 1e-6, 1e-5]  # fake/c has its own prices


def test_answer_is_the_weighted_plurality_and_confidence_its_share() -> None:
    script = {"fake/a": reply("Paris", 10, 2), "fake/b": reply("paris.", 11, 3), "fake/c": reply("Lyon", 12, 4)}
    cascade, _ = ensemble_cascade(script)
    result = cascade.run("Capital of France?")
    vote = result.attempts[0]
    assert (vote.tier, vote.model, vote.answer, vote.decision) == (
        "vote",
        "fake/a + fake/b + fake/c",
        "Paris",
        "accept",
    )
    assert vote.confidence == pytest.approx(2 / 3)
    assert "vote: weight 2 of 3 for 'Paris'" in vote.reason
    assert [(m.model, m.answer) for m in vote.members] == [("fake/a", "Paris"), ("fake/b", "paris"), ("fake/c", "Lyon")]
    assert (vote.prompt_tokens, vote.completion_tokens) == (33, 9)
    assert vote.cost_usd == pytest.approx((10 + 11) * 1e-6 + (2 + 3) * 2e-6 + 12 * 1e-5 + 4 * 2e-5)
    assert vote.cost_usd == pytest.approx(sum(m.cost_usd for m in vote.members))
    assert result.total_tokens == 42 and len(result.attempts) == 1


def test_weights_can_outvote_a_majority() -> None:
    tier = {**ENSEMBLE_TIER, "models": [{"model": "fake/a", "weight": 3}, "fake/b", "fake/c"]}
    cascade, _ = ensemble_cascade({"fake/a": "4", "fake/b": "5", "fake/c": "5"}, tiers=[tier, STRONG_TIER])
    attempt = cascade.run("2+2?").attempts[0]
    assert attempt.answer == "4" and attempt.confidence == pytest.approx(0.6)


def test_a_tie_goes_to_the_member_listed_first_and_escalates_on_low_share() -> None:
    cascade, _ = ensemble_cascade({"fake/a": FakeReply(error="auth"), "fake/b": "Rome", "fake/c": "Milan"})
    result = cascade.run("Capital of Italy?")
    vote = result.attempts[0]
    assert vote.answer == "Rome" and vote.confidence == pytest.approx(1 / 3) and vote.decision == "escalate"
    assert vote.members[0].error and "authentication failed" in vote.members[0].error
    assert vote.members[0].answer is None and vote.members[0].total_tokens == 0
    assert result.final_tier == "strong"


def test_members_that_give_no_answer_abstain_but_count_in_the_share() -> None:
    tier = {**ENSEMBLE_TIER, "answer": {"format": "number"}}
    cascade, _ = ensemble_cascade({"fake/a": "12", "fake/b": "no idea", "fake/c": "12.0"}, tiers=[tier, STRONG_TIER])
    vote = cascade.run("6+6?").attempts[0]
    assert vote.answer == "12" and vote.confidence == pytest.approx(2 / 3)
    assert vote.members[1].answer is None and vote.members[1].error is None and vote.members[1].total_tokens > 0


def test_retries_apply_to_each_member() -> None:
    flaky = [FakeReply(error="server", times=1), FakeReply("Paris")]
    cascade, fake = ensemble_cascade({"fake/a": flaky, "fake/b": "Paris", "fake/c": "Paris"})
    vote = cascade.run("Capital of France?").attempts[0]
    assert vote.confidence == 1.0 and all(m.error is None for m in vote.members)
    assert [c.model for c in fake.calls].count("fake/a") == 2


def test_a_member_that_times_out_abstains_while_the_others_answer() -> None:
    slow = FakeReply("Lyon", delay_s=5.0)
    retry = {"attempts": 2, "initial_wait_s": 0, "max_wait_s": 0, "timeout_s": 0.2}
    cascade, fake = ensemble_cascade({"fake/a": slow, "fake/b": "Paris", "fake/c": "Paris"}, retry=retry)
    vote = cascade.run("Capital of France?").attempts[0]
    assert vote.answer == "Paris" and vote.confidence == pytest.approx(2 / 3)
    assert vote.members[0].error and "no answer within 0.2 s" in vote.members[0].error
    assert [c.model for c in fake.calls].count("fake/a") == 2  # timed out, retried, timed out again


def test_every_member_failing_is_a_failed_attempt_that_falls_through() -> None:
    failing = {m: FakeReply(error="bad_request") for m in ("fake/a", "fake/b", "fake/c")}
    cascade, _ = ensemble_cascade(failing)
    result = cascade.run("q?")
    failed, strong = result.attempts
    assert failed.decision == "failed" and failed.answer is None and failed.cost_usd == 0
    assert failed.error and failed.error.startswith("every ensemble member failed (fake/a: ")
    assert [m.model for m in failed.members] == ["fake/a", "fake/b", "fake/c"]
    assert all(m.error and "bad request" in m.error for m in failed.members)
    assert strong.answer == "strong answer" and result.final_tier == "strong" and result.error is None


def test_all_members_without_an_answer_escalate_with_confidence_zero() -> None:
    tier = {**ENSEMBLE_TIER, "answer": {"format": "number"}}
    cascade, _ = ensemble_cascade({"fake/a": "hmm", "fake/b": "well", "fake/c": "?"}, tiers=[tier, STRONG_TIER])
    vote = cascade.run("6+6?").attempts[0]
    assert vote.answer is None and vote.confidence == 0.0 and vote.decision == "escalate"
    assert "none of 3 members answered" in vote.reason


def test_token_budget_caps_each_member_so_their_sum_fits() -> None:
    cascade, fake = ensemble_cascade(
        {"fake/a": "1", "fake/b": "1", "fake/c": "1"}, budget={"max_total_tokens": 60}, tiers=[ENSEMBLE_TIER]
    )
    cascade.run("q?")
    prompt = sum(-(-len(m["content"]) // 4) for m in fake.calls[0].messages)
    assert {c.max_tokens for c in fake.calls} == {min(16, (60 - 3 * prompt) // 3)}
    assert 3 * (prompt + fake.calls[0].max_tokens) <= 60


def test_a_tier_whose_members_together_overrun_the_budget_is_not_called() -> None:
    single = {"name": "one", "model": "fake/one", "max_tokens": 4, "prices": ENSEMBLE_TIER["prices"]}
    script = {"fake/one": reply("?", 8, 1, logprobs=[-3.0]), "fake/a": "x", "fake/b": "x", "fake/c": "x"}
    # 9 tokens spent, ~5 prompt tokens a call: one member's call would fit what is left, three do not.
    cascade, fake = ensemble_cascade(script, tiers=[single, ENSEMBLE_TIER], budget={"max_total_tokens": 20})
    result = cascade.run("q?")
    assert [a.tier for a in result.attempts] == ["one"] and result.attempts[0].decision == "stop"
    assert "token budget" in result.stop_reason and [c.model for c in fake.calls] == ["fake/one"]


PRICED = {
    **ENSEMBLE_TIER,
    "models": ["fake/a", "fake/b", "fake/c"],
    "prices": {"input_per_token": 1e-3, "output_per_token": 1e-3},
}
FREE = {"name": "free", "model": "fake/free", "max_tokens": 4}  # costs nothing, so the budget is all the ensemble's


def _prompt_tokens(query: str) -> int:
    cascade, _ = ensemble_cascade({}, tiers=[PRICED])
    tier = cascade.graph.tiers[0]
    request = tier.request(tier.specs[0], conversation_of(query), max_tokens=1, index=0)
    return sum(-(-len(m["content"]) // 4) for m in request.messages)


def test_cost_budget_caps_every_members_output_so_their_sum_fits() -> None:
    limit = 3 * _prompt_tokens("q?") * 1e-3 + 3 * 5 * 1e-3 + 1e-9  # room for 5 output tokens a member, not 16
    script = {"fake/free": FakeReply("?", logprobs=[-5.0]), "fake/a": "x", "fake/b": "x", "fake/c": "x"}
    cascade, fake = ensemble_cascade(script, tiers=[FREE, PRICED], budget={"max_cost_usd": limit}, verifier=None)
    result = cascade.run("q?")
    assert [a.tier for a in result.attempts] == ["free", "vote"]
    assert {c.max_tokens for c in fake.calls if c.model != "fake/free"} == {5}
    assert result.total_cost_usd <= limit


def test_cost_budget_does_not_call_a_tier_whose_members_prompts_together_overrun_it() -> None:
    limit = 2.5 * _prompt_tokens("q?") * 1e-3  # two members' prompts fit, three do not
    script = {"fake/free": FakeReply("?", logprobs=[-5.0]), "fake/a": "x", "fake/b": "x", "fake/c": "x"}
    cascade, fake = ensemble_cascade(script, tiers=[FREE, PRICED], budget={"max_cost_usd": limit})
    result = cascade.run("q?")
    assert [a.tier for a in result.attempts] == ["free"] and "cost budget" in result.stop_reason
    assert [c.model for c in fake.calls] == ["fake/free"]
