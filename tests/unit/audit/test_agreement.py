"""Agreement with the reference is exact match with the reference as gold, in the tier's answer form."""

from __future__ import annotations

import pytest

from cascade.audit.agreement import answer_format, same_answer
from cascade.audit.selection import audit_unit, is_audited
from cascade.config.schema import TierConfig


@pytest.mark.parametrize(
    ("answer", "reference", "form", "agree"),
    [
        ("1,000", "1000.0", "number", True),
        ("18", "$18.", "number", True),
        ("18", "19", "number", False),
        ("B", "(B)", "choice", True),
        ("B", "C", "choice", False),
        ("Yes.", "yes", "yesno", True),
        ("The Eiffel Tower", "eiffel tower", "first_line", True),
        ("Paris, France", "Paris", "final", False),
        ('{"a": 1, "b": [2]}', '{"b": [2], "a": 1}', "json_schema", True),
        ('{"a": 1}', '{"a": 2}', "json_object", False),
        ("not json", "not json", "tools", False),
        ("Paris", None, "first_line", False),
        (None, "Paris", "first_line", False),
    ],
)
def test_answers_agree_as_exact_match_in_their_form(answer: str, reference: str, form: str, agree: bool) -> None:
    assert same_answer(answer, reference, form) is agree


def test_the_form_is_the_output_kind_for_json_and_tools_else_the_tier_format() -> None:
    tier = TierConfig.model_validate({"name": "big", "model": "fake/big", "answer": {"format": "number"}})
    assert answer_format(tier) == "number" and answer_format(tier, "tools") == "tools"
    assert answer_format(tier, "json_schema") == "json_schema" and answer_format(tier, "text") == "number"


def test_audit_selection_is_a_stable_uniform_hash_of_the_run_id() -> None:
    units = [audit_unit(7, f"run-{i}") for i in range(4000)]
    assert units == [audit_unit(7, f"run-{i}") for i in range(4000)]  # the same in every process
    assert all(0 <= u < 1 for u in units) and 0.045 < sum(u < 0.05 for u in units) / 4000 < 0.056
    assert units != [audit_unit(8, f"run-{i}") for i in range(4000)]  # the seed reshuffles
    assert is_audited(1.0, 0, "any") and is_audited(0.05, 7, "run-0") == (units[0] < 0.05)
