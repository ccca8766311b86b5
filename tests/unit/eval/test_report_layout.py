"""Reports lead with the verdict (the operating point against the strongest model alone, paired 95%
intervals), fit 100 columns with model names whole, keep the metrics' definitions behind --explain
(and in the JSON), and say why when their figures would otherwise mislead."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cascade.cli.main import main
from tests.unit.eval.test_cost_axis import dataset
from tests.unit.eval.test_replay import DATA, needs_data
from tests.unit.optimize.test_optimize import _cli_logs

ROOT = Path(__file__).resolve().parents[3]
VERDICT = re.compile(
    r"^vs (\S+) alone on (\d+) items: cost (\d\.\d{3})x \[(\d\.\d{3}), (\d\.\d{3})\], "
    r"EM ([+-]\d+\.\d) pt \[([+-]\d+\.\d), ([+-]\d+\.\d)\]$"
)


def assert_laid_out(out: str, *, explain: bool) -> re.Match[str]:
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 100
    assert "…" not in out  # names are folded, never cut
    assert ("metric definitions" in out) == explain
    found = VERDICT.match(lines[0])
    assert found is not None, lines[0]
    return found


def test_replay_of_a_config_leads_with_its_verdict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = _cli_logs(tmp_path)
    config, report = tmp_path / "T.yaml", tmp_path / "R.json"
    assert main(["tune", "--logs", str(a), "--min-em-of-strongest", "--write", str(config)]) == 0
    capsys.readouterr()
    assert main(["replay", "--dataset", str(b), "--config", str(config), "--out", str(report)]) == 0
    found = assert_laid_out(capsys.readouterr().out, explain=False)
    data = json.loads(report.read_text())
    assert found.group(1) == "strong" and int(found.group(2)) == data["n_items"] == 300
    assert float(found.group(3)) == pytest.approx(data["verdict"]["cost_ratio_vs_strongest"]["value"], abs=5e-4)
    assert data["verdict"]["line"].startswith("vs strong alone") and data["metric_definitions"]["apgr"]
    assert main(["replay", "--dataset", str(b), "--config", str(config), "--explain"]) == 0
    assert_laid_out(capsys.readouterr().out, explain=True)


def test_eval_leads_with_the_measured_cascade_against_the_strongest_tier(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = str(ROOT / "configs" / "fake.yaml")
    args = ["eval", "--config", fake, "--dataset", str(dataset(tmp_path)), "--cache", str(tmp_path / "c.sqlite")]
    assert main(args) == 0
    found = assert_laid_out(capsys.readouterr().out, explain=False)
    assert found.group(1) == "large" and found.group(2) == "12"


def test_a_replay_dearer_than_the_strongest_model_says_why(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    a, _ = _cli_logs(tmp_path)
    assert main(["replay", "--dataset", str(a), "--models", "cheap-a,strong", "--threshold", "1.01"]) == 0
    out = capsys.readouterr().out
    ratio = float(assert_laid_out(out, explain=False).group(3))
    assert ratio > 1 and f"The operating point costs {ratio:.2f}x strong alone: 100% of the items escalated" in out


@needs_data
def test_the_swept_curves_cost_cut_beside_a_cheaper_config_is_explained(capsys: pytest.CaptureFixture[str]) -> None:
    """The case seen: `cost cut @ strong EM -22%` printed beside a config that costs 0.46x."""
    log, config = DATA / "routerbench" / "arc_challenge_train.csv", ROOT / "configs" / "tuned" / "arc_challenge.yaml"
    assert main(["replay", "--dataset", str(log), "--config", str(config)]) == 0
    out = capsys.readouterr().out
    found = assert_laid_out(out, explain=False)
    assert found.group(1) == "gpt-4-1106-preview" and found.group(3) == "0.458"
    assert "'cost cut @ strong EM' (-22%) describes the swept curve" in out and "costs 1.22x" in out
