"""Token budgets that follow the question: the learned model, the policies, truncation escalation."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest

from cascade import Cascade, CascadeConfig, FakeCompleter, FakeReply
from cascade.errors import ConfigError, UserError
from cascade.run.trace import render_text
from cascade.token_budget.features import FEATURES, budget_features
from cascade.token_budget.model import TokenBudgetModel
from cascade.token_budget.train import BudgetExample, fit_budget_model
from cascade.types import Attempt, BudgetTrace, CascadeResult, CompletionRequest


def word_problem(quantities: int, rng: random.Random) -> str:
    parts = " and ".join(f"{rng.randint(2, 90)} apples" for _ in range(quantities))
    return f"Tom has {parts}. How many apples does he have?"


def examples(n: int = 160, seed: int = 0) -> list[BudgetExample]:
    """Correct answers whose length grows with the number of quantities in the question (plus noise)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        k = rng.randint(1, 8)
        out.append(BudgetExample(budget_features(word_problem(k, rng)), int(25 * k * rng.uniform(0.8, 1.25)), str(i)))
    return out


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fit_budget_model(examples(), share=0.9).save(tmp_path_factory.mktemp("tb") / "budget.json")


def test_the_learned_budget_grows_with_the_question_and_fits_the_share_held_apart(model_path: Path) -> None:
    model = TokenBudgetModel.load(model_path)
    rng = random.Random(1)
    short, long = budget_features(word_problem(1, rng)), budget_features(word_problem(8, rng))
    assert model.budget(long) > 3 * model.budget(short)
    held = model.report["held_apart"]["0.9"]
    assert held["fit"] >= 0.85  # calibrated on out-of-fold errors: ~90% of held-apart answers fit
    assert held["mean_budget"] < 0.8 * held["constant_mean_budget"]  # smaller than one budget for all


def test_a_new_sample_of_the_same_kind_fits_at_about_the_share(model_path: Path) -> None:
    model = TokenBudgetModel.load(model_path)
    fresh = examples(400, seed=7)
    budgets = model.budgets([e.features for e in fresh], 0.9)
    fit = np.mean([e.tokens <= b for e, b in zip(fresh, budgets, strict=True)])
    assert 0.84 <= fit <= 0.97
    assert model.budget(fresh[0].features, 0.5) < model.budget(fresh[0].features, 0.95)


def test_the_file_round_trips_and_bad_files_are_config_errors(model_path: Path, tmp_path: Path) -> None:
    model = TokenBudgetModel.load(model_path)
    again = TokenBudgetModel.from_json(json.loads(model_path.read_text()))
    assert again.names == FEATURES and math.isclose(again.shift(0.9), model.shift(0.9))
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({**json.loads(model_path.read_text()), "coef": [1.0]}))
    with pytest.raises(ConfigError, match=r"broken\.json: invalid token-budget file: mean, scale and coef"):
        TokenBudgetModel.load(broken)
    with pytest.raises(ConfigError, match="cannot read token-budget file"):
        TokenBudgetModel.load(tmp_path / "missing.json")


def test_too_few_answers_is_a_user_error() -> None:
    with pytest.raises(UserError, match="too few to learn a token budget"):
        fit_budget_model(examples(8))


def test_lower_tiers_answers_are_features() -> None:
    before = Attempt(tier="quick", model="m", answer="41", decision="escalate", confidence=0.3, completion_tokens=7)
    cut = before.model_copy(update={"budget": BudgetTrace(policy="fixed", max_tokens=7, truncated=True)})
    assert budget_features("2 + 2?")["prev_called"] == 0.0
    seen = budget_features("2 + 2?", [before])
    assert seen["prev_called"] == 1.0 and seen["prev_confidence"] == 0.3 and seen["prev_truncated"] == 0.0
    assert budget_features("2 + 2?", [cut])["prev_truncated"] == 1.0


def think_tier(model_path: Path, **policy: object) -> dict[str, object]:
    spec = {"type": "learned", "path": str(model_path), "prompt": "Use at most {budget} tokens."} | policy
    return {"name": "think", "model": "local/qwen2.5-1.5b", "max_tokens": 384, "budget_policy": spec,
            "answer": {"format": "final"}}  # fmt: skip


def recording(
    text: str = "3 + 4 = 7.\nThe answer is 7.", tokens: int = 12
) -> tuple[FakeCompleter, list[CompletionRequest]]:
    seen: list[CompletionRequest] = []

    def reply(request: CompletionRequest) -> FakeReply:
        seen.append(request)
        return FakeReply(text, completion_tokens=tokens, logprobs=None)

    return FakeCompleter({"*": reply}), seen


def test_the_learned_policy_sets_the_cap_the_sentence_and_says_why(model_path: Path) -> None:
    fake, seen = recording()
    config = CascadeConfig.from_dict({"tiers": [think_tier(model_path, levels=[64, 128, 256])]})
    short = Cascade(config, completer=fake).run("Tom has 3 apples and 4 apples. How many apples does he have?")
    rng = random.Random(3)
    Cascade(config, completer=fake).run(word_problem(8, rng))
    assert (
        seen[0].max_tokens in (64, 128) and seen[1].max_tokens in (256, 384) and seen[1].max_tokens > seen[0].max_tokens
    )
    assert seen[0].messages[-1]["content"].endswith(f"\n\nUse at most {seen[0].max_tokens} tokens.")
    assert seen[0].extra == {}  # a local model has no reasoning knob
    budget = short.attempts[0].budget
    assert budget is not None and budget.policy == "learned" and budget.max_tokens == seen[0].max_tokens
    assert "fit 90% of correct answers" in budget.reason
    trace = render_text(short, width=200)
    assert f"budget: {budget.max_tokens} tokens (learned; prompt 'Use at most {budget.max_tokens} tokens.')" in trace


def test_the_run_budget_and_the_tier_ceiling_still_cap_the_learned_budget(model_path: Path) -> None:
    fake, seen = recording()
    tier = think_tier(model_path, min_tokens=500, headroom=2.0) | {"max_tokens": 300}
    config = CascadeConfig.from_dict({"tiers": [tier], "budget": {"max_total_tokens": 250}})
    Cascade(config, completer=fake).run("What is 3 + 4?")
    assert seen[0].max_tokens < 250  # min(ceiling 300, the run's 250 less the prompt)


def test_a_truncated_answer_escalates_to_the_bigger_budget_with_the_reason() -> None:
    def reply(request: CompletionRequest) -> FakeReply:
        return FakeReply("Step 1: 12 + 30 = 42.\nThe answer is 42.", completion_tokens=200, logprobs=[-0.01] * 9)

    tiers = [
        {"name": "short", "model": "m/a", "max_tokens": 64, "logprobs": True, "answer": {"format": "final"},
         "budget_policy": {"type": "fixed", "prompt": "Use at most {budget} tokens."}},
        {"name": "long", "model": "m/a", "max_tokens": 384, "logprobs": True, "answer": {"format": "final"}},
    ]  # fmt: skip
    result = Cascade(CascadeConfig.from_dict({"tiers": tiers}), completer=FakeCompleter({"*": reply})).run("12+30?")
    short, long = result.attempts
    assert short.decision == "escalate" and short.confidence is None and short.verifier is None
    assert "truncated: the answer hit max_tokens=64 (finish_reason length)" in short.reason
    assert short.budget is not None and short.budget.truncated
    assert long.tier == "long" and result.answer == "42" and long.budget is None
    assert "hit the cap (finish_reason length)" in render_text(result, width=200)


def test_the_last_tier_or_on_truncation_judge_judges_a_truncated_answer() -> None:
    fake = FakeCompleter({"*": FakeReply("The answer is 42.", completion_tokens=99, logprobs=[-0.01] * 5)})
    tier = {"name": "only", "model": "m/a", "max_tokens": 10, "logprobs": True, "answer": {"format": "final"}}
    last = Cascade(CascadeConfig.from_dict({"tiers": [tier]}), completer=fake).run("q")
    assert last.attempts[0].confidence is not None and last.attempts[0].budget is not None
    judged = [tier | {"on_truncation": "judge"}, tier | {"name": "next"}]
    result = Cascade(CascadeConfig.from_dict({"tiers": judged}), completer=fake).run("q")
    assert result.attempts[0].decision == "accept" and result.final_tier == "only"


def test_policy_config_errors_name_the_place(tmp_path: Path, model_path: Path) -> None:
    bad = {"tiers": [think_tier(model_path, prompt="Be brief.")]}
    with pytest.raises(ConfigError, match=r"tiers\[0\]\.budget_policy\.prompt: Value error, prompt must contain"):
        Cascade(CascadeConfig.from_dict(bad))
    missing = {"tiers": [think_tier(tmp_path / "nope.json")]}
    with pytest.raises(ConfigError, match=r"tiers\[0\]\.budget_policy\.path: .*cannot read token-budget file"):
        Cascade(CascadeConfig.from_dict(missing))
    unknown = {"tiers": [{"name": "t", "model": "m/a", "budget_policy": {"type": "psychic"}}]}
    with pytest.raises(UserError, match="unknown budget_policy type 'psychic'; known: fixed, learned"):
        Cascade(CascadeConfig.from_dict(unknown))


def test_cascade_token_budget_train_learns_from_labelled_runs_in_the_store(tmp_path: Path) -> None:
    from cascade.cli.main import main
    from cascade.store import open_store

    store = open_store(str(tmp_path / "runs.sqlite"))
    rng = random.Random(5)
    for i, example in enumerate(examples(60, seed=5)):
        question = word_problem(rng.randint(1, 8), rng)
        right, tokens = (i % 4 != 0), example.tokens
        quick = Attempt(tier="quick", model="m", answer="1", decision="escalate", confidence=0.2, completion_tokens=3)
        think = Attempt(tier="think", model="m", answer="7", decision="accept", completion_tokens=tokens)
        result = CascadeResult(query=question, answer="7", accepted=True, final_tier="think", attempts=[quick, think])
        run_id = store.record_run(result, config_name="local")
        store.add_feedback(run_id, kind="label", value="7" if right else "8")
    store.close()
    out, dsn = tmp_path / "budget.json", str(tmp_path / "runs.sqlite")
    assert main(["token-budget", "train", "--store", dsn, "--tier", "think", "--out", str(out)]) == 0
    model = TokenBudgetModel.load(out)
    assert model.training["n"] == 45 and model.training["source"].startswith("store ")  # the 45 right answers
    assert main(["token-budget", "train", "--store", dsn, "--out", str(out)]) == 2  # which tier? a clean error
