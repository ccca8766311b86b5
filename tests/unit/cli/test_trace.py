"""The CLI's trace, JSON and validate commands on the fake config (the trace's text: test_trace.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cascade.cli.main import main

FAKE = str(Path(__file__).resolve().parents[3] / "configs" / "fake.yaml")


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
        "from cascade.cli.main import main\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['--help'])\n"
        "print(sorted(m for m in ('langgraph', 'litellm') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_without_config_the_checkouts_local_yaml_is_used() -> None:
    """The README's first command runs with no --config: the default must be found (the layout move
    put schema.py one directory deeper, and `cascade run QUESTION` failed with 'cannot read config')."""
    from cascade.config.schema import default_config_path

    path = default_config_path()
    assert path == Path(__file__).resolve().parents[3] / "configs" / "local.yaml" and path.is_file()
