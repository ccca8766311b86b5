"""`cascade tune --logs` (the optimizer) and `cascade replay --config` on synthetic logs of known shape."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

import verifiers  # noqa: F401  registers the plugins even without installed entry points
from cascade.cli.main import main
from cascade.config.schema import AnswerConfig, load_config
from cascade.eval.analysis.config_replay import run_config
from cascade.eval.analysis.config_report import config_report
from cascade.eval.data.logs import LogItem, LogTable, TierLog, write_log
from cascade.io.answers import extractor
from cascade.optimize.select import Objective, lower_bounds
from cascade.optimize.tuner import Settings, tune
from cascade.optimize.writer import write
from cascade.store import open_store
from tests.unit.eval.test_replay_report import assert_fits

LETTERS = "ABCD"
CHEAP = ("cheap-a", "cheap-b", "cheap-c")
SMALL = Settings(pool=3, max_gates=2, beam=2)


def synthetic(n: int, seed: int, cheap_right: float = 0.85, strong_right: float = 0.95) -> LogTable:
    """Three cheap models right 85% of the time, independently; a strong one right 95%, at 25x the cost."""
    rng = np.random.default_rng(seed)
    items = []
    for i in range(n):
        gold = LETTERS[rng.integers(4)]
        wrong = [x for x in LETTERS if x != gold]
        tiers = {}
        for model, p, cost in [(m, cheap_right, 0.02) for m in CHEAP] + [("strong", strong_right, 1.0)]:
            right = bool(rng.random() < p)
            answer = gold if right else wrong[rng.integers(3)]
            tiers[model] = TierLog(right, cost, 50, answer)
        prompt = f"Question {seed}-{i}: which?\nA) a\nB) b\nC) c\nD) d\nAnswer:"
        items.append(LogItem(f"{seed}-{i}", prompt, tiers, "choice", {"letters": list(LETTERS)}))
    return LogTable([*CHEAP, "strong"], items, source=f"synthetic-{seed}")


CHOICE = extractor(AnswerConfig(format="choice"))


def test_a_cheap_ensemble_that_agrees_is_found_and_holds_on_new_items(tmp_path: Path) -> None:
    result = tune(synthetic(400, 0), CHOICE, SMALL)
    assert result.pays and result.strongest == "strong"
    assert result.chosen.ratio < 0.7 and result.chosen.lcb >= -0.01
    files = write(result, tmp_path / "t.yaml", task="choice", sources=["synthetic"])
    config = load_config(tmp_path / "t.yaml")
    assert config.tiers[-1].model == "strong" and len(config.tiers) >= 2
    run = run_config(config, synthetic(400, 1))
    report = config_report(run, n_resamples=200)
    assert_fits(report)
    ratio, delta = report["metrics"]["cost_ratio_vs_strongest"], report["metrics"]["em_delta_vs_strongest"]
    assert ratio["value"] < 0.8 and ratio["ci"][0] <= ratio["value"] <= ratio["ci"][1]
    assert delta["value"] > -0.03 and delta["ci"][0] <= delta["value"] <= delta["ci"][1]
    for key in ("em", "em_ci", "cost_usd"):
        assert key in report["cascade"]
    assert {"em", "cost_usd"} <= set(report["baselines"]["strong"]) and "apgr" in report["metrics"]
    assert all(f.exists() for f in files)


def test_when_no_cascade_pays_the_strongest_model_alone_is_written(tmp_path: Path) -> None:
    weak = synthetic(300, 2, cheap_right=0.5)
    result = tune(weak, CHOICE, SMALL)
    assert not result.pays and result.chosen.structure.label() == "strong"
    write(result, tmp_path / "t.yaml", task="choice", sources=["weak"])
    text = (tmp_path / "t.yaml").read_text()
    assert "No cascade pays" in text
    assert [t.model for t in load_config(tmp_path / "t.yaml").tiers] == ["strong"]


def test_net_benefit_picks_a_cheap_model_when_answers_are_worth_little() -> None:
    result = tune(synthetic(300, 3), CHOICE, Settings(objective=Objective("value", value_per_correct=0.01), pool=3))
    assert result.chosen.structure.final.models[0] in CHEAP or result.chosen.structure.gates


def test_the_lower_bound_never_trusts_a_difference_seen_on_two_items() -> None:
    diff = np.zeros((1, 500))
    mean, lcb = lower_bounds(diff, 1.645)
    assert mean[0] == 0.0 and lcb[0] < -0.003  # zero losses seen is not zero risk
    diff[0, :2] = -1
    assert lower_bounds(diff, 1.645)[1][0] < -0.004 - 1.645 * np.sqrt(2 / 500) / np.sqrt(500) * 0.9


def by_length(n: int, seed: int) -> LogTable:
    """One cheap model, nearly always right on short questions and a coin flip on long ones."""
    rng = np.random.default_rng(seed)
    items = []
    for i in range(n):
        long = bool(rng.random() < 0.5)
        words = " ".join(f"word{k}" for k in range(80 if long else 5))
        right = bool(rng.random() < (0.5 if long else 0.99))
        tiers = {
            "cheap-a": TierLog(right, 0.02, 50, "B" if right else "C"),
            "strong": TierLog(True, 1.0, 50, "B"),
        }
        items.append(LogItem(str(i), f"Q{seed}-{i} {words}?\nA) a\nB) b\nC) c", tiers, "choice"))
    return LogTable(["cheap-a", "strong"], items)


def test_scorer_gates_write_their_scorer_beside_the_yaml(tmp_path: Path) -> None:
    result = tune(by_length(400, 4), CHOICE, Settings(objective=Objective(tolerance=0.02)))
    assert result.chosen.structure.uses_scorer and result.chosen.ratio < 0.7
    write(result, tmp_path / "t.yaml", task="choice", sources=["s"])
    data = yaml.safe_load((tmp_path / "t.yaml").read_text())
    assert data["tiers"][0]["verifier"] == {"type": "scorer", "path": "t.scorer.json"}
    report = json.loads((tmp_path / "t.scorer.json").read_text())["report"]
    assert "auroc" in next(iter(report["calibration"].values()))


def _cli_logs(tmp_path: Path) -> tuple[Path, Path]:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    write_log(synthetic(300, 5), a)
    write_log(synthetic(300, 6), b)
    return a, b


def test_the_commands_tune_write_and_replay(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = _cli_logs(tmp_path)
    yaml_path, out = tmp_path / "T.yaml", tmp_path / "tune.json"
    assert main(["tune", "--logs", str(a), "--min-em-of-strongest", "--write", str(yaml_path), "--out", str(out)]) == 0
    assert json.loads(out.read_text())["chosen"]["cost_ratio"] < 1.0
    report_path = tmp_path / "R.json"
    assert main(["replay", "--dataset", str(b), "--config", str(yaml_path), "--out", str(report_path)]) == 0
    assert "vs strong alone on 300 items" in capsys.readouterr().out
    metrics = json.loads(report_path.read_text())["metrics"]
    assert metrics["cost_ratio_vs_strongest"]["value"] < 1.0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["tune", "--logs", "{a}"], "needs one objective"),
        (["tune", "--logs", "{a}", "--min-em-of-strongest", "--value-per-correct", "1"], "needs one objective"),
        (["tune", "--min-em-of-strongest"], "needs --config and --dataset"),
        (["replay", "--dataset", "{a}", "--config", "{cfg}", "--models", "x"], "would re-tune it"),
        (["replay", "--dataset", "{a}", "--config", "{other}"], "the log has no model openai/gpt-4o"),
        (["tune", "--logs", "{a}", "--min-em-of-strongest", "--model-map", "oops"], "LOG_NAME=MODEL"),
    ],
)
def test_mistakes_are_clean_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    a, _ = _cli_logs(tmp_path)
    cfg, other = tmp_path / "c.yaml", tmp_path / "o.yaml"
    cfg.write_text("tiers:\n  - {name: s, model: strong}\n")
    other.write_text("tiers:\n  - {name: s, model: openai/gpt-4o}\n")
    filled = [x.format(a=a, cfg=cfg, other=other) for x in argv]
    assert main(filled) == 2
    assert message in capsys.readouterr().err.replace("\n", " ")


def test_scorer_train_from_a_log_for_a_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, _ = _cli_logs(tmp_path)
    config = tmp_path / "c.yaml"
    config.write_text(
        "tiers:\n"
        "  - {name: vote, models: [cheap-a, cheap-b, cheap-c], answer: {format: choice}}\n"
        "  - {name: strong, model: strong, answer: {format: choice}}\n"
    )
    out = tmp_path / "s.json"
    assert main(["scorer", "train", "--logs", str(a), "--config", str(config), "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert set(data["heads"]) == {"vote"} and data["report"]["calibration"]["vote"]["n"] == 300
    assert "scorer calibration (cross-fitted)" in capsys.readouterr().out


def test_scorer_train_needs_one_source_and_enough_answers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "s.json")
    assert main(["scorer", "train", "--out", out]) == 2
    assert "needs one source" in capsys.readouterr().err
    empty = tmp_path / "empty.sqlite"
    assert main(["scorer", "train", "--store", str(empty), "--out", out]) == 2
    assert "no store at" in capsys.readouterr().err  # a read-only command creates no store
    open_store(str(empty)).close()
    assert main(["scorer", "train", "--store", str(empty), "--out", out]) == 2
    assert "too few" in capsys.readouterr().err


def test_a_cheaper_model_that_only_ties_within_noise_is_not_the_strongest() -> None:
    from cascade.optimize.tuner import strongest_model

    log = synthetic(150, 8, cheap_right=0.9, strong_right=0.9)  # equal by construction: noise decides
    lucky = max(CHEAP, key=lambda m: log.correct(m).mean())
    assert strongest_model(log, 1.645) == "strong"
    far = synthetic(600, 9, cheap_right=0.6, strong_right=0.95)
    assert strongest_model(far, 1.645) == "strong" and lucky in CHEAP
    better = LogTable(far.models, far.items)
    for item in better.items:  # cheap-a now always right: clearly the strongest, whatever it costs
        item.tiers["cheap-a"] = TierLog(True, 0.02, 50, "A")
    assert strongest_model(better, 1.645) == "cheap-a"
