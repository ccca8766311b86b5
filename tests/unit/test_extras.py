"""A missing optional dependency is a one-line error naming the extra to install, checked before any
work: `cascade serve` without prometheus_client was a traceback, `--plot` without matplotlib failed
only after the whole report had printed."""

from __future__ import annotations

import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from cascade.cli.main import main
from cascade.extras import EXTRAS, missing, require
from tests.unit.eval.test_cost_axis import dataset
from tests.unit.optimize.test_optimize import _cli_logs

ROOT = Path(__file__).resolve().parents[2]
FAKE = str(ROOT / "configs" / "fake.yaml")


def one_line_naming(err: str, extra: str, module: str) -> bool:
    lines = err.strip().splitlines()
    return len(lines) == 1 and f"[{extra}] extra (no module {module}): pip install -e '.[{extra}]'" in lines[0]


def test_each_extra_brings_the_modules_checked_for_it() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    owners = packages_distributions()
    for extra, modules in EXTRAS.items():
        named = {Requirement(r).name.lower().replace("_", "-") for r in extras[extra]}
        for module in modules:
            found = {d.lower().replace("_", "-") for d in owners.get(module.split(".")[0], [])}
            assert found & named, f"[{extra}] brings none of {sorted(found)} (the distributions of {module})"
    assert missing("serve") == []  # the dev install has them all


def test_serve_without_its_extra_says_which_before_starting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CASCADE_API_KEYS", "k")
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    assert main(["serve", "-c", FAKE]) == 2
    assert one_line_naming(capsys.readouterr().err, "serve", "prometheus_client")


@pytest.mark.parametrize("command", ["eval", "replay"])
def test_plot_without_matplotlib_fails_before_any_work(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    cache, plot = tmp_path / "cache.sqlite", str(tmp_path / "p.png")
    if command == "eval":
        argv = ["eval", "--config", FAKE, "--dataset", str(dataset(tmp_path)), "--cache", str(cache), "--plot", plot]
    else:
        argv = ["replay", "--dataset", str(_cli_logs(tmp_path)[0]), "--plot", plot]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert one_line_naming(captured.err, "plot", "matplotlib")
    assert captured.out == "" and not cache.exists()  # no report, no model called


def test_tuning_from_logs_without_scikit_learn_says_which(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "sklearn", None)
    log = str(_cli_logs(tmp_path)[0])
    assert main(["tune", "--logs", log, "--min-em-of-strongest", "--write", str(tmp_path / "t.yaml")]) == 2
    assert one_line_naming(capsys.readouterr().err, "learn", "sklearn")


def test_require_names_every_missing_module(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "fastapi", None)
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    with pytest.raises(Exception, match=r"no module fastapi, uvicorn\)"):
        require("serve", "cascade serve")
