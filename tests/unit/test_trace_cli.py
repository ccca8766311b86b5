"""The rich trace as text, and the CLI's JSON and validate commands on the fake config."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cascade.cli import main
from cascade.trace import render_text
from tests.unit.scripted import make_cascade

FAKE = str(Path(__file__).resolve().parents[2] / "configs" / "fake.yaml")


def test_trace_shows_each_attempt_with_tokens_cost_confidence_and_decision() -> None:
    cascade, _ = make_cascade({"small": 0.3, "medium": 0.9, "large": 0.0})
    text = render_text(cascade.run("What is 2+3?"), width=120)
    lines = text.splitlines()
    assert lines[0].startswith("cascade query: What is 2+3?")
    assert any("small (fake/small) → ESCALATE" in line for line in lines)
    assert any("medium (fake/medium) → ACCEPT" in line for line in lines)
    assert "confidence 0.30 / threshold 0.70" in text
    assert "confidence 0.30 < threshold 0.70" in text
    assert "answer: 5  (accepted, final tier medium)" in text
    assert "total: " in text and "2 attempt(s)" in text


def test_trace_shows_failures_in_red_text() -> None:
    from cascade import FakeReply

    script = {"fake/small": FakeReply(error="auth"), "fake/medium": "5", "fake/large": "6"}
    cascade, _ = make_cascade({"small": 0.9, "medium": 0.9, "large": 0.9}, script=script)
    text = render_text(cascade.run("q"), width=120)
    assert "small (fake/small) → FAILED" in text and "error: fake/small: authentication failed" in text


def test_cli_json_has_totals_equal_to_sums(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--config", FAKE, "--json", "What is the capital of France?"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["answer"] == "Paris" and data["accepted"] and data["final_tier"] == "large"
    assert [a["decision"] for a in data["attempts"]] == ["escalate", "accept"]
    assert data["total_tokens"] == sum(a["prompt_tokens"] + a["completion_tokens"] for a in data["attempts"])
    assert data["total_cost_usd"] == pytest.approx(sum(a["cost_usd"] for a in data["attempts"]))
    assert data["total_tokens"] > 0


def test_cli_accepts_at_small_tier_for_arithmetic(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--config", FAKE, "--json", "What is 2 + 2?"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["answer"] == "4" and data["final_tier"] == "small" and len(data["attempts"]) == 1


def test_cli_trace_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--config", FAKE, "What is the capital of France?"]) == 0
    out = capsys.readouterr().out
    assert "small (fake/small)" in out and "ACCEPT" in out and "Paris" in out


def test_cli_validate_ok_and_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", FAKE]) == 0
    assert "ok" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text("tiers:\n  - {name: a, model: m, temprature: 0.2}\n")
    assert main(["validate", str(bad)]) == 2
    assert "temprature" in capsys.readouterr().err


def test_cli_help_does_not_load_langgraph_or_litellm() -> None:
    """`cascade --help` must stay fast: the heavy libraries load only when a command needs them."""
    probe = (
        "import sys, contextlib, io\n"
        "from cascade.cli import main\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['--help'])\n"
        "print(sorted(m for m in ('langgraph', 'litellm') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
