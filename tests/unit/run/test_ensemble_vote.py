"""The ensemble vote (the one function live and replay share), ensemble tier config, and the fake's prompt tables."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from cascade import ConfigError, FakeCompleter, FakeReply
from cascade.completers.plugins import make_completer
from cascade.config.schema import parse_config
from cascade.errors import PermanentProviderError
from cascade.run.ensemble import vote
from cascade.types import CompletionRequest


def test_plurality_wins_after_normalising_answers() -> None:
    result = vote(["Paris.", "Lyon", "paris", None])
    assert (result.answer, result.winner, result.weight) == ("Paris.", 0, 2.0)
    assert result.tally == {"paris": 2.0, "lyon": 1.0}
    assert result.share == pytest.approx(0.5)  # the abstainer counts in the total


def test_weights_beat_headcount() -> None:
    result = vote(["A", "B", "B"], [3.0, 1.0, 1.0])
    assert (result.answer, result.share) == ("A", pytest.approx(0.6))


def test_ties_go_to_the_member_listed_first() -> None:
    assert vote(["B", "A"]).answer == "B"
    assert vote([None, "A", "B", "B", "A"]).answer == "A"  # A's first voter comes before B's
    assert vote(["x", "y", "z"], [0.1 + 0.2, 0.3, 0.2]).answer == "x"
    assert vote(["y", "x", "x"], [0.3, 0.1, 0.2]).answer == "y"  # 0.1 + 0.2 != 0.3 in floats, still a tie


def test_all_abstain_gives_no_answer_and_no_confidence() -> None:
    result = vote([None, None, "..."])  # punctuation alone normalises to nothing: no answer
    assert (result.answer, result.winner, result.share, result.total) == (None, None, 0.0, 3.0)


def test_answers_and_weights_must_pair() -> None:
    with pytest.raises(ValueError, match="2 answers but 1 weights"):
        vote(["a", "b"], [1.0])
    with pytest.raises(ValueError, match="finite and non-negative"):
        vote(["a", "b"], [1.0, float("nan")])


def _tiers(tier: str) -> str:
    return f"name: t\ntiers:\n{tier}\n"


def test_models_accept_strings_and_mappings_with_inherited_reach_and_prices() -> None:
    config = parse_config(
        _tiers(
            "  - name: vote\n"
            "    models:\n"
            "      - openai/a\n"
            "      - {model: openai/b, weight: 2, api_base: http://b,\n"
            "         prices: {input_per_token: 1, output_per_token: 2}}\n"
            "    api_base: http://tier\n"
            "    prices: {input_per_token: 0.5, output_per_token: 0.5}\n"
            "    extra: {top_p: 0.9}\n"
        )
    )
    tier = config.tiers[0]
    a, b = tier.member_specs()
    assert tier.is_ensemble and tier.label == "openai/a + openai/b"
    assert (a.model, a.weight, a.api_base, a.prices, a.extra) == (
        "openai/a",
        1.0,
        "http://tier",
        tier.prices,
        {"top_p": 0.9},
    )
    assert (b.weight, b.api_base, b.prices and b.prices.output_per_token) == (2.0, "http://b", 2)


@pytest.mark.parametrize(
    ("tier", "where", "problem"),
    [
        ("  - {name: x, model: a, models: [b, c]}", "<string>:3: tiers[0]", "not both/neither"),
        ("  - {name: x}", "<string>:3: tiers[0]", "not both/neither"),
        ("  - {name: x, models: [a]}", "<string>:3: tiers[0].models", "at least 2 items"),
        (
            "  - name: x\n    models: [a, {model: b, weight: 0}]",
            "<string>:4: tiers[0].models[1].weight",
            "greater than 0",
        ),
        ("  - name: x\n    models: [a, {model: b, weight: .inf}]", "<string>:4: tiers[0].models[1].weight", "finite"),
        (
            "  - name: x\n    models: [a, {model: b, colour: red}]",
            "<string>:4: tiers[0].models[1].colour",
            "unknown field",
        ),
        ("  - {name: x, models: [a, a]}", "<string>:3: tiers[0]", "'a' is listed twice"),
    ],
)
def test_bad_ensembles_are_config_errors_with_file_and_line(tier: str, where: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(_tiers(tier))
    assert any(p.startswith(where) and problem in p for p in caught.value.problems), caught.value.problems


def _request(model: str, prompt: str) -> CompletionRequest:
    return CompletionRequest(model, [{"role": "user", "content": prompt}], max_tokens=8, input_price=1.0)


def test_prompt_tables_answer_by_exact_prompt_with_given_tokens_and_cost() -> None:
    fake = FakeCompleter(
        {"m": "fallback"},
        by_prompt={"m": {"Q1": FakeReply("A", prompt_tokens=7, completion_tokens=1, cost_usd=0.0123), "Q2": "B"}},
    )
    first = asyncio.run(fake.complete(_request("m", "Q1")))
    assert (first.text, first.prompt_tokens, first.completion_tokens, first.cost_usd) == ("A", 7, 1, 0.0123)
    again = asyncio.run(fake.complete(_request("m", "Q1")))  # a table reply is used every time
    assert again.text == "A"
    assert asyncio.run(fake.complete(_request("m", "Q2"))).cost_usd == 1.0  # priced: 1 prompt token x $1
    assert asyncio.run(fake.complete(_request("m", "Q3"))).text == "fallback"


def test_a_prompt_missing_from_a_table_is_a_provider_error() -> None:
    fake = FakeCompleter(by_prompt={"m": {"Q1": "A"}})
    with pytest.raises(PermanentProviderError, match="no reply for this prompt"):
        asyncio.run(fake.complete(_request("m", "other")))
    with pytest.raises(ValueError, match="a table reply has neither"):
        FakeCompleter(by_prompt={"m": {"Q1": FakeReply("A", times=2)}})


def test_prompt_tables_scale_to_thousands_of_items() -> None:
    table = {f"question {i}": FakeReply(str(i), cost_usd=i * 1e-6) for i in range(20_000)}
    fake = FakeCompleter(by_prompt={"m": table})
    completion = asyncio.run(fake.complete(_request("m", "question 19999")))
    assert (completion.text, completion.cost_usd) == ("19999", pytest.approx(0.019999))


def test_yaml_fake_scripts_tables_and_validates_them() -> None:
    config = parse_config(
        "tiers: [{name: a, model: m}]\ncompleter: {type: fake, by_prompt: {m: {Q1: A, Q2: {text: B, cost_usd: 0.5}}}}\n"
    )
    fake = make_completer(config)
    assert asyncio.run(fake.complete(_request("m", "Q2"))).cost_usd == 0.5
    bad = {
        "completer:\n  type: fake\n  by_prompt: {m: {Q1: {match: x}}}\n": r"<string>:4: completer.by_prompt.m.Q1.match",
        "completer: {type: litellm, replies: {m: [{text: x}]}}\n": "script the fake completer",
        "completer: {type: fake, replies: {m: [{match: '('}]}}\n": "invalid regex",
    }
    for text, message in bad.items():
        with pytest.raises(ConfigError, match=message):  # the completer is a plugin: checked when it is built
            make_completer(parse_config("tiers: [{name: a, model: m}]\n" + text))


def test_an_ensemble_config_survives_a_dump_to_yaml_and_back() -> None:
    import yaml

    shipped = Path(__file__).resolve().parents[3] / "configs" / "ensemble.yaml"
    config = parse_config(shipped.read_text())
    for options in ({}, {"exclude_none": True}, {"exclude_defaults": True}):
        again = parse_config(yaml.safe_dump(config.model_dump(mode="json", **options)))
        assert again.model_dump() == config.model_dump()
        assert [t.member_specs() for t in again.tiers] == [t.member_specs() for t in config.tiers]
