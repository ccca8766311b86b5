"""Live evaluation and tuning with the fake completer: cached, exact, split-honest."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import yaml

from cascade import Cascade, CascadeConfig, FakeCompleter, FakeReply
from cascade.cli.eval import run_tune
from cascade.cli.main import _parser
from cascade.config import safe_yaml
from cascade.config.schema import default_config_path, load_config
from cascade.eval.data.items import Item
from cascade.eval.live.cache import CachingCompleter
from cascade.eval.live.runner import evaluate
from cascade.optimize.live_tune import Objective, search, tuned_yaml, with_thresholds
from tests.unit.eval.test_replay_report import assert_fits

# "useless" is never right; "cheap" is right and sure on even numbers, unsure and wrong on odd;
# "strong" is always right.
SCRIPT = {
    "fake/useless": FakeReply("nope", logprobs=[-0.01]),
    "fake/cheap": [FakeReply("even", match=r"[02468]$", logprobs=[-0.01]), FakeReply("wrong", logprobs=[-2.0])],
    "fake/strong": lambda req: FakeReply(
        "even" if req.messages[-1]["content"][-1] in "02468" else "odd", logprobs=[-0.01]
    ),
}
TIERS = [
    {
        "name": name,
        "model": f"fake/{name}",
        "max_tokens": 8,
        "logprobs": True,
        "prices": {"input_per_token": price, "output_per_token": price},
    }
    for name, price in (("useless", 1e-9), ("cheap", 1e-8), ("strong", 1e-6))
]
CONFIG = {"name": "t", "tiers": TIERS, "verifier": {"type": "logprob"}, "router": {"type": "threshold"}}
ITEMS = [Item(f"i{n}", f"number {n}", ["even" if n % 2 == 0 else "odd"]) for n in range(40)]


def test_evaluate_reuses_tier_outputs_for_the_cascade(tmp_path: Path) -> None:
    cache = CachingCompleter(FakeCompleter(SCRIPT), tmp_path / "c.sqlite")
    run = asyncio.run(evaluate(Cascade(CascadeConfig.from_dict(CONFIG), completer=cache), ITEMS[:10]))
    assert cache.misses == 30  # three tiers alone; the cascade's calls were all hits
    assert [run.log.items[0].tiers[t].correct for t in ("useless", "cheap", "strong")] == [False, True, True]
    assert sum(run.correct) == 0  # threshold 0.5: the sure but wrong "nope" is accepted everywhere


def test_search_drops_a_tier_that_never_pays_and_meets_the_target(tmp_path: Path) -> None:
    config = CascadeConfig.from_dict(CONFIG)
    cache = CachingCompleter(FakeCompleter(SCRIPT), tmp_path / "c.sqlite")
    run = asyncio.run(evaluate(Cascade(config, completer=cache), ITEMS))
    best, candidates = asyncio.run(search(config, cache, run, Objective(use_cost=True, min_em=1.0)))
    assert best.tiers == ("cheap", "strong") and best.em == 1.0
    assert 0.05 < best.thresholds["cheap"] <= 0.99
    strong_alone = next(c for c in candidates if c.tiers == ("strong",))
    assert best.cost_per_item < strong_alone.cost_per_item


def _tune(tmp_path: Path, tiers: list[dict[str, Any]]) -> tuple[dict[str, Any], Path]:
    """`cascade tune --min-em-of-strongest` on the 40 items with the scripted tiers; the report and tuned YAML."""
    data = tmp_path / "items.jsonl"
    data.write_text("".join(json.dumps({"question": i.question, "answer": i.answers[0]}) + "\n" for i in ITEMS))
    config = tmp_path / "c.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                **CONFIG,
                "tiers": tiers,
                "completer": {
                    "type": "fake",
                    "replies": {
                        "fake/useless": [{"text": "nope", "logprobs": [-0.01]}],
                        "fake/cheap": [
                            {"text": "even", "match": "[02468]$", "logprobs": [-0.01]},
                            {"text": "x", "logprobs": [-2.0]},
                        ],
                        "fake/strong": [
                            {"text": "even", "match": "[02468]$", "logprobs": [-0.01]},
                            {"text": "odd", "logprobs": [-0.01]},
                        ],
                    },
                },
            }
        )
    )
    out, tuned = tmp_path / "r.json", tmp_path / "tuned.yaml"
    argv = ["tune", "--config", str(config), "--dataset", str(data), "--seed", "1", "--concurrency", "2"]
    argv += ["--cache", str(tmp_path / "cache.sqlite"), "--out", str(out), "--use-cost", "--min-em-of-strongest"]
    args = _parser().parse_args([*argv, "--value-per-correct", "1", "--write", str(tuned)])
    assert run_tune(args) == 0
    return json.loads(out.read_text()), tuned


def test_tune_cli_reports_on_held_out_items_and_writes_config(tmp_path: Path) -> None:
    report, tuned = _tune(tmp_path, TIERS)
    assert_fits(report)  # cascade tune's report: the live cascade, the replayed one, the tuning
    assert report["tuning"]["n_tune_items"] + report["tuning"]["n_test_items"] == 40
    assert report["cascade"]["em"] == 1.0 and report["n_items"] == report["tuning"]["n_test_items"]
    assert report["cascade"]["cost_usd"] < report["baselines"]["strong"]["cost_usd"]
    written = yaml.safe_load(tuned.read_text())
    assert [t["name"] for t in written["tiers"]] == ["cheap", "strong"]
    assert set(written["router"]["per_tier"]) == {"cheap"}


def test_tune_target_is_the_most_accurate_tier_not_the_last(tmp_path: Path) -> None:
    useless, cheap, strong = TIERS
    report, _ = _tune(tmp_path, [useless, strong, cheap])  # the last tier is right only on even numbers
    assert report["tuning"]["objective"]["min_em"] == 1.0


def test_grid_stays_within_budget_as_more_tiers_are_tuned_at_once() -> None:
    from cascade.optimize.live_tune import MAX_COMBOS, MAX_GRID, grid_size

    assert grid_size(1) == MAX_COMBOS - 2 and grid_size(2) == MAX_GRID  # one gate: every confidence seen
    for tiers in range(1, 5):
        assert (grid_size(tiers) + 2) ** tiers <= MAX_COMBOS
    assert grid_size(8) == 2  # never fewer than the lowest and highest confidence seen


def test_dropping_tiers_takes_them_out_of_the_pre_routers_rules(tmp_path: Path) -> None:
    config = load_config(default_config_path())  # its features pre-router skips tiers by name
    kept = ("qwen2.5-1.5b", "qwen2.5-1.5b-think")
    tuned = with_thresholds(config, {"qwen2.5-1.5b": 0.9}, kept)
    Cascade(tuned)  # builds: no rule names a dropped tier
    rules = tuned.pre_router.params()["rules"] if tuned.pre_router else []
    assert [rule["skip"] for rule in rules] == [[], ["qwen2.5-1.5b-think"], ["qwen2.5-1.5b-think"]]
    alone = with_thresholds(config, {}, kept[1:])  # a rule left skipping every tier would not load
    Cascade(alone)
    assert all(rule["skip"] == [] for rule in (alone.pre_router.params()["rules"] if alone.pre_router else []))
    written = tmp_path / "t.yaml"
    written.write_text(yaml.safe_dump(tuned_yaml(safe_yaml.load(default_config_path()).data, kept, {})))
    assert [t.name for t in load_config(written).tiers] == list(kept)
