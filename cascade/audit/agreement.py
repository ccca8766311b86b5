"""When an answer agrees with the reference: exact match with the reference as the gold answer.

Without gold answers "EM" becomes agreement with what the strongest tier answered, so two answers
are compared exactly as evaluation compares an answer with its gold (`exact_match`), in the form
the tier reads answers in: numbers by value ("1,000" and "1000.0" agree), yes/no and choice letters
by what they say, other text after SQuAD normalisation (case, punctuation, articles). JSON answers
and tool calls agree when they are the same JSON value (key order and spacing aside). An answer
never agrees with a missing one: a reference that gave no answer cannot vouch for anything.
"""

from __future__ import annotations

import json
from typing import Any

from cascade.config.schema import TierConfig
from cascade.io.exact_match import exact_match

STRUCTURED = frozenset({"json_object", "json_schema", "tools"})
_EM_TASK = {"number": "number", "yesno": "yesno", "choice": "choice", "first_line": "first_line"}


def answer_format(tier: TierConfig, output_kind: str = "text") -> str:
    """The form answers of `tier` are compared in: the output kind for JSON and tools, else the tier's format."""
    return output_kind if output_kind in STRUCTURED else tier.answer.format


def same_answer(answer: str | None, reference: str | None, form: str) -> bool:
    """Whether `answer` agrees with `reference` when answers are read in `form` (see the module docstring)."""
    if answer is None or reference is None:
        return False
    if form in STRUCTURED:
        value = _json(answer)
        return value is not _MISSING and value == _json(reference)
    return exact_match(answer, reference, _EM_TASK.get(form, "text"))


_MISSING = object()


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return _MISSING
