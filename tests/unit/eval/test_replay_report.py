"""Real replay reports fit their types: pydantic validates each against `ReplayReport` (every key's
type, every required key), and no dict in it carries a key its TypedDict does not declare."""

from __future__ import annotations

import json
from typing import Any, get_args, get_origin, get_type_hints

import pytest
from pydantic import TypeAdapter
from typing_extensions import is_typeddict

from cascade.eval.analysis.replay import replay, replay_file
from cascade.eval.analysis.replay_report import ReplayReport
from cascade.eval.data.logs import LogTable
from tests.unit.eval.test_policies import four_items
from tests.unit.eval.test_replay import DATA, _hand_report, needs_data

REPORT = TypeAdapter(ReplayReport)


def undeclared_keys(value: Any, kind: Any, where: str = "report") -> list[str]:
    """Paths of keys in `value` that its type (a TypedDict, or one inside lists, dicts and unions) lacks."""
    if is_typeddict(kind) and isinstance(value, dict):
        hints = get_type_hints(kind)
        found = [f"{where}.{key}" for key in value if key not in hints]
        return found + [p for key, v in value.items() if key in hints for p in undeclared_keys(v, hints[key], key)]
    args = [a for a in get_args(kind) if a is not type(None)]
    if get_origin(kind) is list and isinstance(value, list):
        return [p for item in value for p in undeclared_keys(item, args[0], f"{where}[]")]
    if get_origin(kind) is dict and isinstance(value, dict):
        return [p for item in value.values() for p in undeclared_keys(item, args[1], f"{where}{{}}")]
    fitting = [a for a in args if is_typeddict(a)]
    if fitting and isinstance(value, dict):  # a union of TypedDicts: the member that fits best
        return min((undeclared_keys(value, a, where) for a in fitting), key=len)
    return []


def assert_fits(report: ReplayReport) -> None:
    REPORT.validate_python(json.loads(json.dumps(report)))
    assert undeclared_keys(report, ReplayReport) == []


def test_a_replay_by_hand_fits_its_type() -> None:
    assert_fits(_hand_report())
    assert_fits(_hand_report(threshold=0.5))


def test_a_report_without_a_cascade_policy_fits_its_type() -> None:
    log: LogTable = four_items().select(["w", "s"])
    report = replay(log, [])
    assert report["cascade"] is None and set(report["metrics"].values()) == {None}
    assert_fits(report)


@needs_data
@pytest.mark.parametrize("log", ["routerbench/arc_challenge_train.csv", "routellm/gsm8k_responses.csv"])
def test_replays_of_the_anchors_logs_fit_their_type(log: str) -> None:
    assert_fits(replay_file(DATA / log))


def test_the_schema_check_sees_a_stray_key() -> None:
    report = _hand_report()
    report["policies"][0]["metrics"]["surprise"] = 1  # type: ignore[typeddict-unknown-key]  # the report and its first policy share one dict
    assert undeclared_keys(report, ReplayReport) == ["metrics.surprise", "metrics.surprise"]
