"""The shipped local default (`configs/local.yaml`): its calibrated scorer, shipped as package data,
and its task-aware policy (which tiers each question type calls, reasoning only where it paid),
run on scripted models."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import yaml

import routers  # noqa: F401  registers the plugins even without installed entry points
import verifiers  # noqa: F401
from cascade import Cascade, FakeCompleter, FakeReply, load_config
from cascade.config.schema import CascadeConfig
from cascade.io.features import task_of
from cascade.scoring import ScoringInput
from cascade.token_budget.model import TokenBudgetModel
from cascade.types import CompletionRequest
from verifiers.scorer import ScorerVerifier

CONFIG = Path(__file__).resolve().parents[3] / "configs" / "local.yaml"
THINK = "qwen2.5-1.5b-think"
# How the opt-in budget tells the reasoning tier its budget (RESULTS.md, "Token budgets").
SENTENCE = "Show the key steps briefly, in at most {budget} tokens, before the last line."
QUESTIONS = {
    "yesno": "Is the sentiment of this review positive or negative?\nReview: a gorgeous, witty film",
    "factoid": "Who wrote the novel Moby-Dick?",
    "multiple_choice": "Which gas do plants take in?\nA) oxygen\nB) carbon dioxide\nC) helium\nD) neon",
    "arithmetic": "Tom has 12 apples and buys 30 more. How many apples does he have now?",
    "other": "Name a colour",
}


@pytest.fixture(scope="module")
def config() -> CascadeConfig:
    return load_config(CONFIG)


def scripted(sure: bool) -> FakeCompleter:
    """Every quick tier answers at once (sure: every token at probability 0.99; else 0.2); the
    reasoning tier (the request with room for a reasoning) reasons, then answers."""
    lp = math.log(0.99 if sure else 0.2)

    def reply(request: CompletionRequest) -> FakeReply:
        if request.max_tokens > 100:
            return FakeReply("12 + 30 = 42.\nThe answer is 42.", logprobs=[lp] * 12)
        return FakeReply("42", logprobs=[lp])

    return FakeCompleter({"*": reply})


def allowed(config: CascadeConfig, query: str) -> list[str]:
    """The tiers the config's skip rules leave for this query (the first matching rule)."""
    assert config.pre_router is not None
    task = task_of(query)
    for rule in config.pre_router.model_extra["rules"]:
        tasks = (rule.get("when") or {}).get("task")
        if tasks is None or task in ([tasks] if isinstance(tasks, str) else tasks):
            return [t.name for t in config.tiers if t.name not in rule.get("skip", [])]
    return [t.name for t in config.tiers]


def test_the_default_judges_answers_with_the_shipped_calibrated_scorer(config: CascadeConfig) -> None:
    cascade = Cascade(config, completer=scripted(True))
    verifier = cascade.graph.tiers[0].verifier
    assert isinstance(verifier, ScorerVerifier)
    scorer = verifier.scorer
    assert scorer.training["split"] == "calibration" and scorer.training["version"]
    assert all(scorer.knows(t.name) for t in config.tiers)
    # only signals that carry across question types: no query features, no answer form
    assert not [n for n in scorer.names if n.startswith(("q_", "task=", "form="))]
    assert "p_margin" in scorer.names and "earlier_share" in scorer.names


def test_a_surer_answer_gets_a_higher_probability_of_being_right(config: CascadeConfig) -> None:
    verifier = Cascade(config, completer=scripted(True)).graph.tiers[0].verifier
    assert isinstance(verifier, ScorerVerifier)
    for index, tier in enumerate(config.tiers[:3]):
        sure = ScoringInput("Is it?", tier.name, index, "yes", "yes", logprobs=(-0.01,), first_top=(-0.01, -5.0))
        doubtful = ScoringInput("Is it?", tier.name, index, "yes", "yes", logprobs=(-1.6,), first_top=(-1.6, -1.7))
        assert 0.0 <= verifier.scorer.predict(doubtful) < verifier.scorer.predict(sure) <= 1.0


@pytest.mark.parametrize("task", sorted(QUESTIONS))
def test_each_question_type_calls_only_the_tiers_that_paid_for_it(config: CascadeConfig, task: str) -> None:
    query = QUESTIONS[task]
    assert task_of(query) == task
    tiers = allowed(config, query)
    doubtful = Cascade(config, completer=scripted(False)).run(query)
    assert [a.tier for a in doubtful.attempts] == tiers  # nothing accepted: every allowed tier, in order
    assert doubtful.answer == "42"
    skipped = [t.name for t in config.tiers if t.name not in tiers]
    if skipped:
        assert "skip " + ", ".join(skipped) in doubtful.route_reason
    sure = Cascade(config, completer=scripted(True)).run(query)
    assert sure.attempts[0].tier == tiers[0] and sure.accepted and len(sure.attempts) == 1


def test_reasoning_is_tried_only_where_it_paid(config: CascadeConfig) -> None:
    reasoning = [task for task, query in QUESTIONS.items() if THINK in allowed(config, query)]
    assert reasoning == ["arithmetic"]


def test_the_reasoning_tier_keeps_its_whole_budget(config: CascadeConfig) -> None:
    """The learned budget lost 10 EM points on held-out arithmetic (RESULTS.md): not the default."""
    result = Cascade(config, completer=scripted(False)).run(QUESTIONS["arithmetic"])
    think = result.attempts[-1]
    assert think.tier == THINK and think.budget is None
    assert config.tiers[config.tier_index(THINK)].budget_policy is None


def opt_in_block() -> dict[str, Any]:
    """The learned budget the default's comment offers, as a user would uncomment it."""
    lines = CONFIG.read_text().splitlines()
    start = lines.index("    # budget_policy:")
    block = []
    for line in lines[start:]:
        if not line.startswith("    #   ") and line != "    # budget_policy:":
            break
        block.append(line.replace("    # ", "", 1))
    parsed = yaml.safe_load("\n".join(block))
    assert isinstance(parsed, dict)
    return parsed


def test_the_opt_in_budget_its_comment_shows_tells_a_learned_budget_fitted_on_calibration_items() -> None:
    data = yaml.safe_load(CONFIG.read_text())
    index = [t["name"] for t in data["tiers"]].index(THINK)
    data["tiers"][index] |= opt_in_block()
    config = CascadeConfig.from_dict(data, source=str(CONFIG))
    result = Cascade(config, completer=scripted(False)).run(QUESTIONS["arithmetic"])
    think = result.attempts[-1]
    assert think.tier == THINK and think.budget is not None and think.budget.policy == "learned"
    policy = config.tiers[index].budget_policy
    assert policy is not None
    levels, headroom = policy.params()["levels"], policy.params()["headroom"]
    assert policy.params()["prompt"] == SENTENCE
    before, after = SENTENCE.split("{budget}")
    told = int((think.budget.sentence or "").removeprefix(before).removesuffix(after))
    assert told in levels and think.budget.max_tokens == min(math.ceil(told * headroom), 384)
    assert "fit 90% of correct answers to queries like this" in think.budget.reason
    model = TokenBudgetModel.load(CONFIG.parents[1] / "cascade" / "local" / "data" / "default_token_budget.json")
    assert model.training["split"] == "calibration" and model.training["families"] == ["arithmetic"]
