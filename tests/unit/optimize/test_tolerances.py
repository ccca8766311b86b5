"""When nothing pays at the asked tolerance, `tune --logs` shows what 0.01, 0.02, 0.03 and 0.05 would
buy and the exact command to run next; a vote threshold is said in words."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from cascade.cli.main import main
from cascade.eval.data.logs import write_log
from cascade.optimize.tolerances import vote_threshold_words
from tests.unit.optimize.test_optimize import synthetic


def test_nothing_pays_at_001_so_the_looser_tolerances_and_the_next_command_are_shown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log, written, report = tmp_path / "few.jsonl", tmp_path / "T.yaml", tmp_path / "T.json"
    write_log(synthetic(120, 0), log)  # 120 items: a one-point loss is not provable
    argv = ["tune", "--logs", str(log), "--min-em-of-strongest", "--write", str(written), "--out", str(report)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "No cascade pays on these items" in out and "What each tolerance would buy" in out
    assert "[vote] → strong" in out  # the verifier is shown, not eaten as markup
    # the alternative shown beside "thresholds 1" is a vote: what 1 asks is said under the table
    assert "cheap-a+cheap-b: its answer is kept only when both models agree (vote threshold 1" in " ".join(out.split())
    looser = json.loads(report.read_text())["looser_tolerances"]
    assert [p["tolerance"] for p in looser] == [0.01, 0.02, 0.03, 0.05]
    assert looser[0]["chosen"] is None and looser[1]["chosen"]["bound"] >= -0.02
    assert all(p["chosen"] is None or p["chosen"]["cost_ratio"] <= 0.9 for p in looser)
    lines = out.splitlines()
    advice = next(x for x in lines if x.startswith("Next, to accept an EM loss of up to 0.02"))
    command = lines[lines.index(advice) + 1]
    argv = shlex.split(command)
    assert argv[:2] == ["cascade", "tune"] and "--tolerance" in argv and argv[argv.index("--tolerance") + 1] == "0.02"
    assert main(argv[1:]) == 0  # the command as printed runs, and at 0.02 a cascade pays
    header = written.read_text()
    assert "# Chosen: " in header and "its answer is kept" in header


@pytest.mark.parametrize(
    ("threshold", "weights", "words"),
    [
        (1.0, (1.0, 1.0, 1.0), "kept only when all 3 models agree (vote threshold 1: any disagreement escalates)"),
        (1.0, (1.0, 1.0), "kept only when both models agree"),
        (0.6666, (1.0, 1.0, 1.0), "kept when at least 2 of 3 models agree"),  # thresholds are floored: 2/3
        (0.5, (1.0, 2.0), "kept when the models that agree hold at least 50% of the vote weight"),
    ],
)
def test_vote_thresholds_in_words(threshold: float, weights: tuple[float, ...], words: str) -> None:
    assert vote_threshold_words(threshold, weights).startswith(words)
