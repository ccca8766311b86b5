"""Gold-answer items: one `Item` shape for every source, so eval, tune and replay never care where
questions came from; plain records (JSONL/JSON/CSV/TSV) mapped onto items, and seeded splits.

Which file holds which format, and which reader reads it, is `cascade.eval.data.formats`.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from cascade.errors import UserError
from cascade.eval.data.unreadable import json_lines

T = TypeVar("T")
QUESTION_FIELDS = ("question", "query", "prompt", "input", "text")
ANSWER_FIELDS = ("answer", "answers", "gold", "target", "label", "output")


@dataclass
class Item:
    """One question with every accepted answer; `task` names the extractor that reads predictions."""

    id: str
    question: str
    answers: list[str]
    task: str = "first_line"
    context: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def prompt(self) -> str:
        """The question with its passage (BoolQ-style items are unanswerable without it)."""
        return f"{self.context}\n\nQuestion: {self.question}" if self.context else self.question


def read_records(path: Path, fmt: str) -> Iterator[dict[str, Any]]:
    """Raw dicts from a JSONL, JSON (a list, or {"data": [...]}), CSV or TSV file."""
    if fmt == "jsonl":
        yield from (record for _, record in json_lines(path, "dataset"))
    elif fmt == "json":
        data = json.loads(path.read_text(encoding="utf-8"))
        yield from data["data"] if isinstance(data, dict) and "data" in data else data
    else:
        with path.open(newline="", encoding="utf-8") as fh:
            yield from csv.DictReader(fh, delimiter="\t" if fmt == "tsv" else ",")


def from_records(
    records: Sequence[dict[str, Any]],
    question_field: str | None = None,
    answer_field: str | None = None,
    id_field: str | None = None,
    source: str = "item",
    *,
    gold: bool = True,
) -> list[Item]:
    """Items from dicts; fields default to the first of the usual names present in the first record.
    Without `gold`, prompts only: no answer field is needed and none is read."""
    if not records:
        return []
    q_field = question_field or _pick(records[0], QUESTION_FIELDS, "question")
    a_field = (answer_field or _pick(records[0], ANSWER_FIELDS, "answer")) if gold else None
    items = []
    for i, record in enumerate(records):
        if q_field not in record or (a_field is not None and a_field not in record):
            raise UserError(
                f"record {i} has no {q_field!r} or {a_field!r} field (map them with question_field/answer_field)"
            )
        item_id = str(record[id_field]) if id_field else f"{source}-{i}"
        answers = as_answers(record[a_field]) if a_field is not None else []
        items.append(Item(item_id, str(record[q_field]), answers))
    task = infer_task([a for item in items for a in item.answers])
    for item in items:
        item.task = task
    return items


def _pick(record: dict[str, Any], names: Sequence[str], what: str) -> str:
    for name in names:
        if name in record:
            return name
    raise UserError(f"no {what} field among {sorted(record)}; pass the field name explicitly")


def as_answers(value: Any) -> list[str]:
    """A gold value as a list of accepted aliases (strings, numbers, booleans, or lists of them)."""
    if isinstance(value, list | tuple):
        return [a for v in value for a in as_answers(v)]
    if isinstance(value, bool):
        return ["yes" if value else "no"]
    if isinstance(value, float) and value.is_integer():
        return [str(int(value))]
    return [str(value)]


def infer_task(answers: Sequence[str]) -> str:
    """The extractor a set of gold answers implies: all numbers, all yes/no, all letters, else text."""
    if not answers:
        return "first_line"
    lowered = {a.strip().lower() for a in answers}
    if lowered <= {"yes", "no"}:
        return "yesno"
    if all(len(a.strip()) == 1 and a.strip().upper() in "ABCDEFGHIJ" for a in answers):
        return "choice"
    if all(_is_number(a) for a in answers):
        return "number"
    return "first_line"


def _is_number(text: str) -> bool:
    try:
        float(text.replace(",", "").replace("$", "").strip())
    except ValueError:
        return False
    return True


def split(items: Sequence[T], fractions: Sequence[float], seed: int = 0) -> list[list[T]]:
    """Disjoint parts of `items` in the given proportions, the same for the same seed.

    Tune on one part and report on another: the parts never share an item. Rounding goes to the
    last part; fractions must be positive and sum to at most 1 (the rest is dropped).
    """
    if not fractions or any(f <= 0 for f in fractions) or sum(fractions) > 1 + 1e-9:
        raise ValueError(f"fractions must be positive and sum to at most 1, got {list(fractions)}")
    order = np.random.default_rng(seed).permutation(len(items))
    total = round(sum(fractions) * len(items))
    bounds = np.floor(np.cumsum(fractions) * len(items)).astype(int)
    bounds[-1] = total
    parts, start = [], 0
    for end in bounds:
        parts.append([items[int(i)] for i in order[start:end]])
        start = int(end)
    return parts
