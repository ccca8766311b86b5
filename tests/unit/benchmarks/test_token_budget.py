"""The token-budget benchmark's own logic: serving smaller caps from one greedy recording, and the
arrangements it compares, built from the shipped default."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from benchmarks.support.budget_arrangements import OPT_IN_POLICY
from benchmarks.support.cap_bound import cap_table
from benchmarks.support.capped_replay import truncated
from cascade import Cascade, load_config
from cascade.errors import UserError
from cascade.types import Completion, CompletionRequest
from tests.unit.bench_loader import load_benchmark
from tests.unit.local.test_default import opt_in_block

bench = load_benchmark("token_budget")
CONFIG = Path(__file__).resolve().parents[3] / "configs" / "local.yaml"
TOKENS = ("3", " +", " 4", " =", " 7", ".\n", "The", " answer", " is", " 7", ".")


def recorded(text: str = "".join(TOKENS), tokens: tuple[str, ...] = TOKENS) -> Completion:
    top = tuple(((t, -0.1),) for t in tokens)
    return Completion(text, "local/m", 30, len(tokens), 0.0, 0.0, (-0.1,) * len(tokens), "stop", top_logprobs=top)


def test_a_smaller_cap_is_the_recordings_first_tokens_and_says_length() -> None:
    cut = truncated(recorded(), 4)
    assert cut is not None and cut.text == "3 + 4 =" and cut.completion_tokens == 4
    assert cut.finish_reason == "length" and cut.token_logprobs == (-0.1,) * 4
    assert truncated(recorded(), 11) == recorded()  # it stopped within the cap: as recorded


def test_tokens_that_do_not_spell_the_text_are_not_cut() -> None:
    assert truncated(recorded("3 + 4 = 7. Done"), 4) is None
    assert truncated(replace(recorded(), top_logprobs=None), 4) is None


class Cache:
    """A recording cache: what it holds, else a 'live' call it records (at the cap it is asked)."""

    def __init__(self) -> None:
        self.held: dict[int, Completion] = {}
        self.calls: list[int] = []

    async def complete(self, request: CompletionRequest) -> Completion:
        if request.max_tokens not in self.held:
            self.calls.append(request.max_tokens)
            self.held[request.max_tokens] = recorded()
        return self.held[request.max_tokens]


def test_capped_replay_records_once_at_the_tiers_cap_and_serves_every_smaller_one() -> None:
    cache = Cache()
    capped = bench.CappedReplay(cache, 384)
    ask = CompletionRequest("local/m", [{"role": "user", "content": "3+4?"}], 4, output_price=1e-6, input_price=0.0)
    first = asyncio.run(capped.complete(ask))
    second = asyncio.run(capped.complete(replace(ask, max_tokens=6)))
    assert cache.calls == [384] and first.text == "3 + 4 =" and second.completion_tokens == 6
    assert first.cost_usd == pytest.approx(4e-6) and capped.derived == 2
    asyncio.run(capped.complete(replace(ask, temperature=0.7)))  # sampling: no cut is exact
    assert cache.calls == [384, 4]


def test_the_arrangements_built_from_the_default() -> None:
    config = bench.budgeted(load_config(CONFIG))
    think = config.tiers[bench.budgeted_index(config)].name
    fixed = bench.arranged(config, "fixed", "alone", 128)
    assert [t.name for t in fixed.tiers] == [think] and fixed.tiers[0].budget_policy is None
    ladder = bench.arranged(config, "ladder", "cascade", 128)
    short = ladder.tiers[-2]
    assert [t.name for t in ladder.tiers][-2:] == [f"{think}-short", f"{think}-whole"]
    assert short.budget_policy is not None and short.budget_policy.params()["tokens"] == 128
    assert bench.told(short) == bench.told(config.tiers[bench.budgeted_index(config)]) is not None  # T's words
    assert ladder.router.params()["per_tier"][f"{think}-short"] == 0.0  # only a cut-off answer goes on
    assert ladder.pre_router is not None
    assert config.pre_router is not None
    was = [think in rule.get("skip", []) for rule in config.pre_router.params()["rules"]]
    now = [rule["skip"] for rule in ladder.pre_router.params()["rules"]]
    assert was == [f"{think}-short" in skip and f"{think}-whole" in skip for skip in now] and any(was)
    learned = bench.arranged(config, "learned", "cascade", 128)
    assert [t.name for t in learned.tiers] == [t.name for t in config.tiers]


def test_figures_compare_each_arrangement_with_fixed_item_by_item() -> None:
    def runs(tokens: list[int], right: list[bool]) -> list[object]:
        return [bench.Outcome(r, t, t * 1e-6, False, (t,)) for t, r in zip(tokens, right, strict=True)]

    fixed = runs([300, 200, 100, 400], [True, True, False, True])
    shorter = runs([150, 100, 50, 200], [True, False, False, True])
    out = bench.figures({"fixed": fixed, "learned": shorter, "ladder": fixed, "learned_then_whole": shorter})
    assert out["n"] == 4 and out["fixed"]["em"] == 0.75 and out["learned"]["reasoning_tokens"] == 500
    assert out["learned_vs_fixed"]["tokens_ratio"]["value"] == pytest.approx(0.5)
    assert out["learned_vs_fixed"]["em_delta"]["value"] == pytest.approx(-0.25)
    assert out["ladder_vs_fixed"]["em_delta"]["value"] == 0.0


def test_another_sentence_replaces_the_budgeted_tiers_own_and_nothing_else() -> None:
    config = bench.budgeted(load_config(CONFIG))
    index = bench.budgeted_index(config)
    other = bench.with_sentence(config, "Reason briefly (at most {budget} tokens).")
    assert bench.told(other.tiers[index]) == "Reason briefly (at most {budget} tokens)."
    assert bench.told(config.tiers[index]) != bench.told(other.tiers[index])  # the config read is untouched
    assert other.tiers[index].budget_policy is not None
    assert other.tiers[index].budget_policy.params()["levels"] == [128, 192, 256, 384]
    assert [t.model_dump() for t in other.tiers[:index]] == [t.model_dump() for t in config.tiers[:index]]
    ladder = bench.arranged(other, "ladder", "alone", 128)
    assert bench.told(ladder.tiers[0]) == "Reason briefly (at most {budget} tokens)."
    with pytest.raises(UserError, match=r"must contain '\{budget\}'"):
        Cascade(bench.with_sentence(config, "Reason briefly."))


def test_only_the_arrangements_asked_for_and_always_fixed_and_learned() -> None:
    assert bench.arrangements_of("learned") == ("fixed", "learned")
    assert bench.arrangements_of("learned_then_whole, fixed") == ("fixed", "learned", "learned_then_whole")
    with pytest.raises(UserError, match="unknown ladders"):
        bench.arrangements_of("ladders")
    fixed = [bench.Outcome(True, 300, 3e-4, False, ()), bench.Outcome(False, 100, 1e-4, False, ())]
    learned = [bench.Outcome(True, 150, 1.5e-4, False, (384,)), bench.Outcome(False, 50, 5e-5, False, (128,))]
    line = {"family": "arithmetic"} | bench.figures({"fixed": fixed, "learned": learned})
    args = bench.parser().parse_args(["compare", "--arrangements", "learned"])
    out = bench.summary([line], bench.budgeted(load_config(CONFIG)), args)
    assert out["tokens_ratio"] == pytest.approx(0.5) and list(out["families"]["arithmetic"]) == ["n", "learned"]


def test_the_default_is_measured_with_the_opt_in_its_comment_shows() -> None:
    default = load_config(CONFIG)
    assert all(t.budget_policy is None for t in default.tiers)
    assert opt_in_block() == {"budget_policy": OPT_IN_POLICY}
    config = bench.budgeted(default)
    think = config.tiers[bench.budgeted_index(config)]
    assert think.name == default.tiers[-1].name and bench.told(think) == OPT_IN_POLICY["prompt"]
    hosted = [t.model_copy(update={"model": "openai/gpt-4o"}) for t in default.tiers]
    other = default.model_copy(update={"tiers": hosted})
    with pytest.raises(UserError, match="no tier has a learned budget_policy"):
        bench.budgeted_index(bench.budgeted(other))  # fitted for one model: not put on another


def test_a_cap_keeps_only_the_right_answers_that_finished_under_it() -> None:
    table = cap_table([100, 200, 300, 400], [True, True, False, True], target_saving=0.25)
    assert table["em"] == 0.75 and table["right_answers_token_share"] == 0.7 and table["oracle_saving"] == 0.3
    assert table["caps"]["192"] == {"tokens": round((100 + 192 * 3) / 1000, 3), "em": 0.25}
    assert table["largest_cap_saving_target"] == 225  # 100 + 200 + 225 + 225 = 750 tokens
    assert table["em_loss_at_that_cap"] == 0.25  # the 400-token right answer is cut
