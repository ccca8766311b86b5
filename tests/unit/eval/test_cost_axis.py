"""Costs that mean something: local models priced by size from the catalog, and a report whose model had
no price measures cost in tokens and says why (its cost metrics are numbers, its plot is not a vertical line)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from cascade.cli.main import main
from cascade.config.schema import load_config
from cascade.local.catalog import default_prices
from cascade.run.engine import Cascade

ROOT = Path(__file__).resolve().parents[3]
QUESTIONS = [("What is 2+2?", "4"), ("Capital of France?", "Paris"), ("Capital of Peru?", "Lima")] * 4


def scripted(tmp_path: Path, small: str, large: str) -> Path:
    """The fake's small → large cascade on the given model strings, with no `prices:` anywhere."""
    config = {
        "name": "unpriced",
        "completer": {
            "type": "fake",
            "replies": {
                small: [{"match": r"\d\+\d", "text": "4", "logprobs": [-0.01]}, {"text": "Lyon", "logprobs": [-2.0]}],
                large: [
                    {"match": "Peru", "text": "Lima", "logprobs": [-0.01], "completion_tokens": 20},
                    {"text": "Paris", "logprobs": [-0.01], "completion_tokens": 20},
                ],
            },
        },
        "tiers": [{"name": "small", "model": small, "logprobs": True}, {"name": "large", "model": large}],
        "verifier": {"type": "logprob", "aggregate": "min"},
        "router": {"type": "threshold", "threshold": 0.6},
    }
    path = tmp_path / "unpriced.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def dataset(tmp_path: Path) -> Path:
    path = tmp_path / "qa.jsonl"
    path.write_text("".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in QUESTIONS))
    return path


def test_catalog_models_are_priced_by_size_as_the_default_config_writes_them() -> None:
    local = load_config(ROOT / "configs" / "local.yaml")
    for tier in local.tiers:
        assert tier.prices is not None
        expected = (tier.prices.input_per_token, tier.prices.output_per_token)
        assert default_prices(str(tier.model)) == pytest.approx(expected, rel=0.01)
    small, large = default_prices("local/smollm2-135m"), default_prices("local/qwen2.5-1.5b")
    assert small is not None and large is not None and large[1] / small[1] == pytest.approx(11.4, rel=0.01)
    assert default_prices("local/my-model.gguf") is None and default_prices("openai/gpt-4o") is None


def test_a_local_tier_without_prices_costs_what_its_size_says(tmp_path: Path) -> None:
    path = scripted(tmp_path, "local/smollm2-135m", "local/qwen2.5-1.5b")
    result = Cascade.from_yaml(path).run("Capital of France?")
    small, large = result.attempts
    prices = default_prices("local/qwen2.5-1.5b")
    assert prices is not None
    assert large.cost_usd == pytest.approx(large.prompt_tokens * prices[0] + large.completion_tokens * prices[1])
    assert 0 < small.cost_usd < large.cost_usd


def test_an_eval_whose_tiers_have_no_price_measures_cost_in_tokens_and_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = scripted(tmp_path, "fake/my-own-small", "fake/my-own-large")  # no prices, none in any map
    out = tmp_path / "r.json"
    args = ["eval", "--config", str(path), "--dataset", str(dataset(tmp_path)), "--cache", str(tmp_path / "c.sqlite")]
    assert main([*args, "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["source"]["cost_unit"] == "tokens"
    assert any("no cost for small, large" in note and "prices:" in note for note in report["source"]["notes"])
    assert report["cascade"]["cost_usd"] == report["cascade"]["total_tokens"] > 0
    assert report["baselines"]["small"]["cost_usd"] < report["baselines"]["large"]["cost_usd"]
    assert report["metrics"]["apgr"] is not None  # was undefined: every policy cost $0
    printed = capsys.readouterr().out
    assert "cost tokens" in printed and "no cost for small, large" in printed


def test_the_plot_of_an_unpriced_eval_is_drawn_on_tokens(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    path = scripted(tmp_path, "fake/my-own-small", "fake/my-own-large")
    plot = tmp_path / "p.png"
    args = ["eval", "--config", str(path), "--dataset", str(dataset(tmp_path)), "--cache", str(tmp_path / "c.sqlite")]
    assert main([*args, "--plot", str(plot)]) == 0
    assert plot.stat().st_size > 10_000
