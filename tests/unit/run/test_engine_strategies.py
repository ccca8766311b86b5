"""Engine paths that involve plugins together: pre-routing, sampling with early stopping, stops."""

from __future__ import annotations

from cascade import Cascade, CascadeConfig, FakeCompleter, FakeReply
from cascade.run.trace import render_text

TIERS = [
    {"name": "small", "model": "fake/small", "max_tokens": 16, "sample_temperature": 0.8},
    {"name": "large", "model": "fake/large", "max_tokens": 64},
]


def build(script: dict[str, object], **overrides: object) -> tuple[Cascade, FakeCompleter]:
    data = {"tiers": TIERS, "router": {"type": "threshold", "threshold": 0.6}, **overrides}
    fake = FakeCompleter(script)  # type: ignore[arg-type]
    return Cascade(CascadeConfig.from_dict(data), completer=fake), fake


def test_self_consistency_stops_sampling_early_and_counts_every_sample() -> None:
    verifier = {
        "type": "self_consistency",
        "max_samples": 8,
        "min_samples": 2,
        "stopping": {"rule": "window", "window": 3},
    }
    cascade, fake = build(
        {"fake/small": FakeReply("42", completion_tokens=2, prompt_tokens=10), "fake/large": "x"}, verifier=verifier
    )
    result = cascade.run("What is 6*7?")
    attempt = result.attempts[0]
    assert result.answer == "42" and result.accepted
    assert attempt.samples == 3 and attempt.samples_saved == 5
    assert len(fake.calls) == 3
    assert attempt.prompt_tokens == 30 and attempt.completion_tokens == 6
    assert fake.calls[0].temperature == 0.0 and fake.calls[1].temperature == 0.8
    assert "confidence 1.00 (self_consistency) / threshold 0.60 · samples 3 (saved 5)" in render_text(result, width=160)


def test_disagreeing_samples_escalate() -> None:
    verifier = {"type": "self_consistency", "max_samples": 4, "min_samples": 4}
    replies = [FakeReply(t, times=1) for t in ("1", "2", "3", "4")]
    cascade, _ = build({"fake/small": replies, "fake/large": "10"}, verifier=verifier)
    result = cascade.run("q")
    assert [a.decision for a in result.attempts] == ["escalate", "accept"]
    assert result.attempts[0].confidence == 0.25


def test_sampling_stops_at_the_token_budget() -> None:
    verifier = {"type": "self_consistency", "max_samples": 8, "min_samples": 8}
    cascade, fake = build(
        {"fake/small": FakeReply("7", completion_tokens=5, prompt_tokens=20), "fake/large": "7"},
        verifier=verifier,
        budget={"max_total_tokens": 80},
    )
    result = cascade.run("q")
    assert len([c for c in fake.calls if c.model == "fake/small"]) == 3  # a 4th sample would pass 80 tokens
    assert result.attempts[0].total_tokens <= 80


def test_pre_router_starts_long_questions_at_the_large_tier() -> None:
    pre = {"type": "features", "rules": [{"when": {"min_words": 10}, "start_tier": "large"}]}
    cascade, fake = build(
        {"fake/small": FakeReply("s", logprobs=[-0.01]), "fake/large": FakeReply("L", logprobs=[-0.01])},
        pre_router=pre,
        tiers=[{**t, "logprobs": True} for t in TIERS],
    )
    short = cascade.run("Capital of Peru?")
    long = cascade.run("Please explain in detail, thinking about every step, why the sky looks blue at noon")
    assert short.final_tier == "small"
    assert [a.tier for a in long.attempts] == ["large"] and long.answer == "L"
    assert "large" in long.route_reason
    assert [c.model for c in fake.calls] == ["fake/small", "fake/large"]


def test_pre_router_token_allocation_reaches_the_call() -> None:
    pre = {"type": "features", "rules": [{"when": {"task": "arithmetic"}, "max_tokens": {"small": 4}}]}
    cascade, fake = build(
        {"fake/small": FakeReply("4", logprobs=[-0.01]), "fake/large": "x"},
        pre_router=pre,
        tiers=[{**t, "logprobs": True} for t in TIERS],
    )
    cascade.run("What is 2 + 2?")
    assert fake.calls[0].max_tokens == 4


def test_answer_format_stop_reaches_the_completer() -> None:
    tiers = [{**TIERS[0], "logprobs": True, "answer": {"format": "number", "stop_when_complete": True}}, TIERS[1]]
    cascade, fake = build(
        {"fake/small": FakeReply("42, because six sevens are 42.", logprobs=[-0.01]), "fake/large": "x"}, tiers=tiers
    )
    result = cascade.run("What is 6*7?")
    assert fake.calls[0].stop_pattern is not None
    assert result.answer == "42"
    assert result.attempts[0].completion_tokens < 8


def test_stop_sequences_cut_the_answer() -> None:
    tiers = [{**TIERS[0], "stop": ["\n"], "logprobs": True}, TIERS[1]]
    cascade, _ = build(
        {"fake/small": FakeReply("Paris\nand more text", logprobs=[-0.01]), "fake/large": "x"}, tiers=tiers
    )
    assert cascade.run("Capital of France?").answer == "Paris"


def test_voting_samples_get_query_specific_seeds() -> None:
    from cascade.run.tiers import sample_seed

    assert sample_seed(7, "a", 0) == 7 and sample_seed(None, "a", 0) is None
    assert sample_seed(7, "a", 1) != sample_seed(7, "b", 1)
    assert sample_seed(7, "a", 1) != sample_seed(7, "a", 2)
    assert sample_seed(7, "a", 1) == sample_seed(7, "a", 1)


def test_fake_completer_keeps_only_the_latest_calls() -> None:
    fake = FakeCompleter({"fake/small": "4"}, keep_calls=3)
    cascade = Cascade(CascadeConfig.from_dict({"tiers": [{"name": "small", "model": "fake/small"}]}), completer=fake)
    for i in range(5):
        cascade.run(f"question {i}")
    assert len(fake.calls) == 3
    assert [c.messages[-1]["content"] for c in fake.calls] == ["question 2", "question 3", "question 4"]
