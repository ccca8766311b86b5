"""`cascade feedback`: parsed the way the `cascade` command will parse it, then run()."""

from __future__ import annotations

import argparse
import json
from contextlib import closing
from pathlib import Path

import pytest

from cascade.cli import feedback as cli_feedback
from cascade.errors import UserError
from cascade.store import open_store
from tests.unit.store.test_contract import make_result


@pytest.fixture
def dsn(tmp_path: Path) -> str:
    path = str(tmp_path / "cli.sqlite")
    with closing(open_store(path)) as store:
        store.record_run(make_result("run1"), config_name="local", variant="A")
    return path


def feedback_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="cascade")
    cli_feedback.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["feedback", *argv])
    assert args.command == "feedback"
    return cli_feedback.run(args)


def test_each_verdict_flag_records_its_kind(dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert feedback_cli("run1", "--up", "--dsn", dsn) == 0
    assert feedback_cli("run1", "--down", "--user", "ana", "--dsn", dsn) == 0
    assert feedback_cli("run1", "--correct", "Paris, France", "--dsn", dsn) == 0
    assert feedback_cli("run1", "--label", "Paris", "--dsn", dsn) == 0
    out = capsys.readouterr().out
    assert "recorded feedback #1: thumbs_up on run run1" in out
    assert "feedback #3: correction 'Paris, France'" in out
    with closing(open_store(dsn)) as store:
        events = store.feedback_for("run1")
    assert [(e.kind, e.value, e.user) for e in events] == [
        ("thumbs_up", None, None),
        ("thumbs_down", None, "ana"),
        ("correction", "Paris, France", None),
        ("label", "Paris", None),
    ]


def test_the_store_defaults_to_cascade_store_env(dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CASCADE_STORE", dsn)
    assert feedback_cli("run1", "--up") == 0
    with closing(open_store(dsn)) as store:
        assert len(store.feedback_for("run1")) == 1


def test_list_shows_the_run_and_its_feedback(dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    feedback_cli("run1", "--label", "Paris", "--user", "rev", "--dsn", dsn)
    capsys.readouterr()
    assert feedback_cli("--list", "run1", "--dsn", dsn) == 0
    out = capsys.readouterr().out
    assert "run run1" in out and "config local / A" in out and "query: Capital of France?" in out
    assert "answer: Paris  (accepted, final tier large, 27 tokens" in out
    assert "label" in out and "rev" in out


def test_list_as_json(dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    feedback_cli("run1", "--down", "--dsn", dsn)
    capsys.readouterr()
    assert feedback_cli("--list", "run1", "--json", "--dsn", dsn) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["run"]["run_id"] == "run1" and len(data["run"]["attempts"]) == 2
    assert [e["kind"] for e in data["feedback"]] == ["thumbs_down"]


def test_list_of_a_run_without_feedback(dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert feedback_cli("--list", "run1", "--dsn", dsn) == 0
    assert "no feedback yet" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["run1"], "--up, --down, --correct TEXT or --label TEXT"),
        (["--up"], "which run"),
        (["nope", "--up"], "no run 'nope'"),
        (["--list", "nope"], "no run 'nope'"),
        (["run1", "--list", "run1"], "give the run id once"),
        (["run1", "--correct", ""], "needs a value"),
    ],
)
def test_bad_requests_are_user_errors(dsn: str, argv: list[str], match: str) -> None:
    with pytest.raises(UserError, match=match):
        feedback_cli(*argv, "--dsn", dsn)


def test_verdict_flags_are_mutually_exclusive(dsn: str) -> None:
    with pytest.raises(SystemExit):
        feedback_cli("run1", "--up", "--down", "--dsn", dsn)
