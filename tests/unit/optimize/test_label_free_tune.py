"""Label-free tuning, from logs and on prompts: the strongest model's answers stand in for gold, which is never read."""

from __future__ import annotations

import asyncio
import json
import re
import shlex
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from cascade.audit.agreement import same_answer
from cascade.cli.main import main
from cascade.config.schema import load_config
from cascade.errors import UserError
from cascade.eval.data.formats import load_dataset
from cascade.eval.data.logs import LogTable, TierLog, write_log
from cascade.eval.live.runner import run_tiers_alone
from cascade.optimize.live_tune import with_thresholds
from cascade.optimize.prompts import Prompts, subset_outcomes
from cascade.optimize.reference import agrees, reference_model, relabel
from cascade.optimize.select import Objective
from cascade.optimize.tuner import tune
from cascade.run.engine import Cascade
from tests.unit.optimize.test_optimize import CHOICE, SMALL, synthetic

LABEL_FREE = replace(SMALL, objective=Objective("tolerance", 0.03), reference="strongest")
EM_WORD = re.compile(r"\bEM\b")


def flat(text: str) -> str:
    """Terminal output as one line (rich wraps at the console's width)."""
    return " ".join(text.split())


def scrambled(log: LogTable, seed: int) -> LogTable:
    """The same answers and costs with random gold verdicts (and some unknown ones)."""
    rng = np.random.default_rng(seed)
    items = []
    for item in log.items:
        verdicts = rng.choice([True, False, None], size=len(item.tiers))
        tiers = {m: replace(c, correct=v) for (m, c), v in zip(item.tiers.items(), verdicts, strict=True)}
        items.append(replace(item, tiers=tiers))
    return replace(log, items=items)


def test_the_gold_columns_are_never_read() -> None:
    log = synthetic(400, 0)
    honest, noisy = tune(log, CHOICE, LABEL_FREE), tune(scrambled(log, 1), CHOICE, LABEL_FREE)
    assert honest.pays and honest.strongest == "strong" and honest.measure == "agreement with strong"
    assert noisy.chosen.structure == honest.chosen.structure and noisy.chosen.thresholds == honest.chosen.thresholds
    assert noisy.chosen.em == honest.chosen.em and noisy.chosen.lcb == honest.chosen.lcb and len(noisy.log) == 400
    # with gold, the same scrambling changes what is measured (the test above could fail)
    assert tune(scrambled(log, 1), CHOICE, SMALL).chosen.em != tune(log, CHOICE, SMALL).chosen.em


def test_agreement_is_read_as_em_reads_gold() -> None:
    assert agrees("(B) because...", "The answer is B.", "choice")
    assert agrees("It costs $1,000.", "1000", "number") and not agrees("1001", "1000", "number")
    assert agrees("The Eiffel Tower!", "eiffel tower", "first_line")
    assert not agrees("B", "I do not know", "choice", letters=["A", "B", "C"])  # no answer to agree with
    assert not agrees(None, "B", "choice")


def test_the_reference_is_the_dearest_model_or_the_one_named() -> None:
    log = synthetic(50, 2)
    assert reference_model(log, "strongest") == "strong" and reference_model(log, "cheap-b") == "cheap-b"
    with pytest.raises(UserError, match="not a model of the log"):
        reference_model(log, "gpt-9")


def test_items_without_a_reference_answer_are_left_out_and_counted() -> None:
    log = synthetic(40, 3)
    log.items[0].tiers["strong"] = TierLog(True, 1.0, 50, "no idea")
    log.items[1].tiers["cheap-a"] = TierLog(None, float("nan"), 50, "A")
    out = relabel(log, "strong")
    assert len(out) == 38 and out.excluded == 2 and "2 item(s) left out" in out.notes[-1]
    assert all(item.tiers["strong"].correct for item in out.items)
    no_text = replace(log, items=[replace(i, tiers={**i.tiers, "strong": TierLog(True, 1.0)}) for i in log.items])
    with pytest.raises(UserError, match="keeps no responses of strong"):
        relabel(no_text, "strong")


def test_the_command_reports_agreement_never_em(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    write_log(scrambled(synthetic(300, 5), 7), a)
    write_log(synthetic(300, 6), b)
    written, out = tmp_path / "T.yaml", tmp_path / "tune.json"
    argv = ["tune", "--logs", str(a), "--reference", "strongest", "--min-agreement", "0.97"]
    assert main([*argv, "--write", str(written), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    report, header = json.loads(out.read_text()), written.read_text().split("\nname:")[0]
    assert "agreement with strong" in printed and "agreement with strong" in header
    assert not EM_WORD.search(printed) and not EM_WORD.search(header)
    assert "--reference strongest --min-agreement 0.97" in header
    assert report["measure"] == "agreement with strong" and report["objective"]["min_agreement"] == 0.97
    assert report["chosen"]["agreement_lower_bound"] >= 0.97 and "em" not in report["chosen"]
    assert main(["replay", "--dataset", str(b), "--config", str(written)]) == 0  # judged with gold elsewhere


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--reference", "strongest"], "needs both --reference"),
        (["--min-agreement", "0.9"], "needs both --reference"),
        (["--reference", "strongest", "--min-agreement", "0.9", "--min-em-of-strongest"], "without gold there is no"),
        (["--reference", "gpt-9", "--min-agreement", "0.9"], "not a model of the log"),
        (["--reference", "strongest", "--min-agreement", "0.9", "--max-cost-usd", "1"], "calls no model"),
    ],
)
def test_label_free_mistakes_are_clean_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    log = tmp_path / "a.jsonl"
    write_log(synthetic(60, 9), log)
    assert main(["tune", "--logs", str(log), *extra]) == 2
    assert message in flat(capsys.readouterr().err)


# --- tuning a config on prompts (`cascade tune --config C --dataset PROMPTS`), the fake completer as the models


def three_tiers(tmp_path: Path, n: int = 120, seed: int = 0) -> tuple[Path, Path, Path]:
    """A fake cascade small → mid → large and n prompts: `small` is sure (logprob ≈ 0, some exactly 0) and
    then nearly always agrees with `large`, or unsure and a coin flip; `mid` agrees 90% of the time. Also
    the same prompts with wrong gold answers."""
    rng = np.random.default_rng(seed)
    tables: dict[str, dict[str, Any]] = {"fake/small": {}, "fake/mid": {}, "fake/large": {}}
    for i in range(n):
        prompt = f"Question {i}: which option? A) a B) b C) c D) d"
        said = "ABCD"[rng.integers(4)]
        other = "ABCD"[("ABCD".index(said) + 1) % 4]
        sure = bool(rng.random() < 0.7)
        agree = bool(rng.random() < (0.98 if sure else 0.5))
        tables["fake/large"][prompt] = {"text": said, "logprobs": [-0.01]}
        tables["fake/small"][prompt] = {
            "text": said if agree else other,
            "logprobs": [0.0 if sure and i % 3 else -0.01 if sure else -1.5],
        }
        agree = bool(rng.random() < 0.9)
        tables["fake/mid"][prompt] = {"text": said if agree else other, "logprobs": [-0.05 if agree else -0.9]}

    def tier(name: str, price: float) -> dict[str, Any]:
        prices = {"input_per_token": price, "output_per_token": 2 * price}
        return {
            "name": name,
            "model": f"fake/{name}",
            "max_tokens": 4,
            "logprobs": True,
            "answer": {"format": "choice"},
            "prices": prices,
        }

    config = {
        "name": "three",
        "completer": {"type": "fake", "by_prompt": tables},
        "tiers": [tier("small", 1e-7), tier("mid", 5e-7), tier("large", 1e-5)],
        "verifier": {"type": "logprob", "aggregate": "min"},
        "router": {"type": "threshold", "threshold": 0.5},
    }
    path, prompts, gold = tmp_path / "three.yaml", tmp_path / "prompts.jsonl", tmp_path / "gold.jsonl"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    prompts.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in tables["fake/large"]))
    gold.write_text("".join(json.dumps({"question": p, "answer": "Z"}) + "\n" for p in tables["fake/large"]))
    return path, prompts, gold


def tune_prompts(config: Path, dataset: Path, tmp_path: Path, *extra: str) -> int:
    argv = ["tune", "--config", str(config), "--dataset", str(dataset), "--reference", "strongest"]
    return main([*argv, "--min-agreement", "0.95", "--cache", str(tmp_path / "cache.sqlite"), *extra])


def test_tuning_on_prompts_reports_agreement_and_never_reads_their_answers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, prompts, gold = three_tiers(tmp_path)
    first, second, out = tmp_path / "a.yaml", tmp_path / "b.yaml", tmp_path / "r.json"
    assert tune_prompts(config, prompts, tmp_path, "--write", str(first), "--out", str(out)) == 0
    printed = capsys.readouterr().out
    assert "360 model calls (0 already in the output cache): at most $" in flat(printed)
    assert "agreement with large" in printed and not EM_WORD.search(printed)
    tuned = load_config(first)
    assert [t.name for t in tuned.tiers][-1] == "large" and len(tuned.tiers) >= 2
    report = json.loads(out.read_text())
    held = report["held_out"]
    assert held["n"] == 60 and held["agreement"]["ci"][0] <= held["agreement"]["value"] <= held["agreement"]["ci"][1]
    assert held["cost_ratio"]["value"] < 0.5 and report["measure"] == "agreement with large"
    assert tune_prompts(config, gold, tmp_path, "--write", str(second)) == 0  # wrong gold answers: not read
    assert "(360 already in the output cache)" in flat(capsys.readouterr().out)
    assert second.read_text().split("\nname:")[1] == first.read_text().split("\nname:")[1]


def test_the_cap_stops_the_calls_and_a_rerun_goes_on_from_the_cache(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, prompts, _ = three_tiers(tmp_path, n=40)
    assert tune_prompts(config, prompts, tmp_path, "--max-cost-usd", "0.0005") == 2
    err = flat(capsys.readouterr().err)
    assert "stopped before a call" in err and "past --max-cost-usd 0.0005" in err
    spent = float(re.search(r"\$([0-9.e-]+) spent on", err).group(1))  # type: ignore[union-attr]
    assert 0 < spent <= 0.0005
    assert tune_prompts(config, prompts, tmp_path) == 0
    cached = re.search(r"\((\d+) already in the output cache\)", flat(capsys.readouterr().out))
    assert cached is not None and 40 <= int(cached.group(1)) < 120


def test_one_replay_per_subset_is_what_the_engine_does_at_every_threshold(tmp_path: Path) -> None:
    config_path, prompts_path, _ = three_tiers(tmp_path, n=60, seed=3)
    config = load_config(config_path)
    cascade = Cascade(config)
    items = load_dataset(prompts_path, gold=False)
    rows = asyncio.run(run_tiers_alone(cascade, items))
    prompts = Prompts(items, rows, "large", "choice")
    prepared = asyncio.run(subset_outcomes(config, cascade.completer, prompts, ("small", "mid")))
    assert (prepared.confidence[:, 0] == 1.0).any()  # the edge: a gate that accepts under every threshold
    for thresholds in [(0.0, 0.0), (0.99, 0.5), (1.0, 0.95), (1.0, 1.0)]:
        tuned = with_thresholds(config, dict(zip(("small", "mid"), thresholds, strict=True)))
        results = Cascade(tuned).batch([i.prompt for i in items])
        agreement, cost = prepared.outcome(thresholds)
        assert list(agreement) == [
            same_answer(r.answer, row["large"].answer, "choice") for r, row in zip(results, rows, strict=True)
        ]
        assert np.allclose(cost, [r.total_cost_usd for r in results])


def test_the_reference_of_a_config_is_its_last_tier(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config, prompts, _ = three_tiers(tmp_path, n=20)
    argv = ["tune", "--config", str(config), "--dataset", str(prompts), "--reference", "mid", "--min-agreement", "0.9"]
    assert main(argv) == 2
    assert "the reference is the last tier, 'large'" in flat(capsys.readouterr().err)


def test_a_reference_that_answers_nothing_is_a_clean_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config, prompts, _ = three_tiers(tmp_path, n=20)
    data = yaml.safe_load(config.read_text())
    data["tiers"][-1]["model"] = "fake/unreachable"  # every call fails, as with a wrong key or endpoint
    config.write_text(yaml.safe_dump(data))
    assert tune_prompts(config, prompts, tmp_path) == 2
    assert "tier 'large' answered none of" in flat(capsys.readouterr().err)


def test_when_nothing_pays_the_lower_agreements_and_the_next_command_are_shown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log, report = tmp_path / "few.jsonl", tmp_path / "T.json"
    write_log(scrambled(synthetic(120, 0), 2), log)  # 120 items: agreement 0.99 is not provable
    argv = ["tune", "--logs", str(log), "--reference", "strongest", "--min-agreement", "0.99", "--out", str(report)]
    assert main([*argv, "--write", str(tmp_path / "T.yaml")]) == 0
    out = capsys.readouterr().out
    assert "What each minimum agreement would buy" in out and not EM_WORD.search(out)
    looser = json.loads(report.read_text())["looser_tolerances"]
    assert [p["min_agreement"] for p in looser][:4] == pytest.approx([0.99, 0.98, 0.97, 0.95])
    paying = [p for p in looser if p["chosen"] is not None]
    assert paying and all(p["chosen"]["agreement_bound"] >= p["min_agreement"] - 1e-9 for p in paying)
    lines = out.splitlines()
    advice = next(x for x in lines if x.startswith("Next, to accept an agreement of"))
    command = shlex.split(lines[lines.index(advice) + 1])
    assert command[command.index("--min-agreement") + 1] == f"{paying[0]['min_agreement']:g}"
    assert main(command[1:]) == 0  # the command as printed runs, and there a cascade pays
    assert "No cascade pays" not in capsys.readouterr().out


def test_a_cheaper_choice_that_only_each_candidates_own_bound_allows_is_shown_with_its_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The trade-off of the simultaneous default: what the per-candidate bound would take, why it is not
    taken, and the command that takes it (which then writes that cascade)."""
    log, report = tmp_path / "few.jsonl", tmp_path / "T.json"
    write_log(scrambled(synthetic(120, 0), 2), log)
    argv = ["tune", "--logs", str(log), "--reference", "strongest", "--min-agreement", "0.91", "--out", str(report)]
    assert main([*argv, "--write", str(tmp_path / "T.yaml")]) == 0
    out = flat(capsys.readouterr().out)
    assert "simultaneous over" in out and "Not chosen: " in out and "not a 95% statement" in out
    shown = json.loads(report.read_text())
    assert shown["selection"]["method"] == "simultaneous" and shown["selection"]["critical_value"] > 1.645
    each = shown["each_candidates_own_bound"]["chosen"]
    assert each["cost_ratio"] < shown["chosen"]["cost_ratio"] and each["agreement_bound"] >= 0.91
    command = shlex.split(out.split("To take it anyway (and watch it live with audit:): ")[1].split(" --write ")[0])
    assert command[command.index("--selection") + 1] == "each"
    assert main([*command[1:], "--write", str(tmp_path / "E.yaml"), "--out", str(report)]) == 0
    assert json.loads(report.read_text())["chosen"]["cascade"] == each["cascade"]
