"""The one table of file formats evaluation reads: gold-answer datasets (items with accepted answers)
and logs of per-model outputs (what each model answered on each item, right or not, at what cost).

A format's name is what `--format` takes; detection picks one from the file's name first and its
shape second. `load_dataset` and `read_log` read through this table, so a new format is one entry.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar, Unpack

from cascade.errors import UserError
from cascade.eval.data import gold
from cascade.eval.data.external import LogOptions, read_routellm, read_routerbench
from cascade.eval.data.items import Item, from_records, read_records
from cascade.eval.data.logs import LogTable, read_cascade_log
from cascade.eval.data.unreadable import reading


@dataclass(frozen=True)
class Fields:
    """Which record fields of a plain file hold the question, the answer and the id (None: the usual names)."""

    question: str | None = None
    answer: str | None = None
    id: str | None = None
    gold: bool = True  # False: prompts only, their answers (if any) not read


@dataclass(frozen=True)
class DatasetFormat:
    """Gold-answer items. `named` recognises the format's files by name (None: by shape only)."""

    name: str
    summary: str
    read: Callable[[Path, Fields], list[Item]]
    named: Callable[[Path], bool] | None = None


@dataclass(frozen=True)
class LogFormat:
    """Logged per-model outputs; `options` (prices, contamination, ...) go to readers that take them."""

    name: str
    summary: str
    read: Callable[[Path, LogOptions], LogTable]


def _plain(fmt: str) -> Callable[[Path, Fields], list[Item]]:
    def read(path: Path, fields: Fields) -> list[Item]:
        records = list(read_records(path, fmt))
        return from_records(records, fields.question, fields.answer, fields.id, source=path.stem, gold=fields.gold)

    return read


def _gold(reader: Callable[[Path], list[Item]]) -> Callable[[Path, Fields], list[Item]]:
    return lambda path, _fields: reader(path)


def _named(key: str, suffix: str) -> Callable[[Path], bool]:
    return lambda path: key in path.name.lower() and path.suffix.lower() == suffix


# Detection asks the named dataset formats in this order; the table's order is also `--format`'s.
FORMATS: dict[str, DatasetFormat | LogFormat] = {
    entry.name: entry
    for entry in (
        DatasetFormat("jsonl", "one JSON object per line, fields mapped", _plain("jsonl")),
        DatasetFormat("json", 'a JSON list of objects (or {"data": [...]}), fields mapped', _plain("json")),
        DatasetFormat("csv", "a CSV file with a header, fields mapped", _plain("csv")),
        DatasetFormat("tsv", "a TSV file with a header, fields mapped", _plain("tsv")),
        DatasetFormat("mmlu", "MMLU CSVs: question, choice0..3, answer index", _gold(gold.read_mmlu), Path.is_dir),
        DatasetFormat("nq", "NQ-open: question, answer aliases", _gold(gold.read_nq), _named("nq-open", ".jsonl")),
        DatasetFormat("gsm8k", "GSM8K: the number after '####'", _gold(gold.read_gsm8k), _named("gsm8k", ".jsonl")),
        DatasetFormat("svamp", "SVAMP: Body + Question, Answer", _gold(gold.read_svamp), _named("svamp", ".json")),
        DatasetFormat("boolq", "BoolQ: yes/no about a passage", _gold(gold.read_boolq), _named("boolq", ".json")),
        DatasetFormat("sst2", "SST-2: text, label 0/1", _gold(gold.read_sst2), _named("sst2", ".tsv")),
        DatasetFormat(
            "arith",
            "AddSub, MultiArith, SingleEq",
            _gold(gold.read_arith),
            lambda path: path.name.lower() in ("addsub.json", "multiarith.json", "singleeq.json"),
        ),
        DatasetFormat(
            "arc_easy",
            "ARC-Easy as LLM-Adapters copied it",
            _gold(gold.read_arc_easy),
            lambda path: "arc_easy" in str(path).lower() and path.name.lower().endswith(".json"),
        ),
        LogFormat("routerbench", "RouterBench CSV (per-model correctness and cost)", lambda p, _: read_routerbench(p)),
        LogFormat("routellm", "RouteLLM responses (a CSV or mmlu_responses/)", lambda p, o: read_routellm(p, **o)),
        LogFormat("cascade", "our own eval log (JSONL, `cascade eval --log`)", lambda p, _: read_cascade_log(p)),
    )
}
F = TypeVar("F", DatasetFormat, LogFormat)
DATASET_FORMATS = tuple(name for name, entry in FORMATS.items() if isinstance(entry, DatasetFormat))
LOG_FORMATS = tuple(name for name, entry in FORMATS.items() if isinstance(entry, LogFormat))


def load_dataset(
    path: str | Path,
    fmt: str | None = None,
    *,
    question_field: str | None = None,
    answer_field: str | None = None,
    id_field: str | None = None,
    task: str | None = None,
    gold: bool = True,
) -> list[Item]:
    """Items from `path`; `fmt` overrides detection (see `FORMATS`), field names map plain files.
    Without `gold`, the prompts only: items carry no answers, whatever the file holds."""
    path = Path(path)
    entry = _entry(path, fmt, DatasetFormat, detect_format, "dataset")
    with reading(path, "dataset", entry.name):
        items = entry.read(path, Fields(question_field, answer_field, id_field, gold))
    if not items:
        raise UserError(f"dataset {path} has no items")
    for item in items:
        item.task = task or item.task
        item.answers = item.answers if gold else []
    return items


def read_log(path: str | Path, fmt: str | None = None, **options: Unpack[LogOptions]) -> LogTable:
    """Any supported log; `fmt` is one of `LOG_FORMATS` (detected when None)."""
    path = Path(path)
    entry = _entry(path, fmt, LogFormat, detect_log_format, "log")
    with reading(path, "log", entry.name):
        table = entry.read(path, options)
    if not table.models or not table.items:
        raise UserError(f"log {path} ({entry.name}) has no {'models' if not table.models else 'items'}")
    return table


def _entry(path: Path, fmt: str | None, kind: type[F], detect: Callable[[Path], str], what: str) -> F:
    """The table's entry of kind `kind` for `path`: `fmt`, or the detected format."""
    if not path.exists():
        raise UserError(f"{what} not found: {path}")
    with reading(path, what):
        name = fmt or detect(path)
    entry = FORMATS.get(name)
    if not isinstance(entry, kind):
        names = DATASET_FORMATS if kind is DatasetFormat else LOG_FORMATS
        raise UserError(f"unknown {what} format {name!r}; one of: {', '.join(names)}")
    return entry


def detect_format(path: Path) -> str:
    """The dataset format of a file, from its name first and its shape second."""
    for name in DATASET_FORMATS:
        entry = FORMATS[name]
        if isinstance(entry, DatasetFormat) and entry.named is not None and entry.named(path):
            return name
    return _detect_by_shape(path)


def _detect_by_shape(path: Path) -> str:
    suffix = path.suffix.lower().lstrip(".")
    if suffix in ("csv", "tsv"):
        with path.open(newline="", encoding="utf-8") as fh:
            header = next(csv.reader(fh, delimiter="\t" if suffix == "tsv" else ","), [])
        if header[:1] == ["question"] and "choice0" in header and "answer" in header:
            return "mmlu"
        return suffix
    if suffix == "json":
        data = json.loads(path.read_text(encoding="utf-8"))
        first = data[0] if isinstance(data, list) and data else {}
        if "lSolutions" in first:
            return "arith"
        if {"Body", "Question", "Answer"} <= set(first):
            return "svamp"
        if "instruction" in first and str(first.get("answer", "")).startswith("answer"):
            return "arc_easy"
        return "json"
    return "jsonl"


def detect_log_format(path: Path) -> str:
    """RouterBench has `<model>|total_cost` columns; RouteLLM has per-model True/False columns."""
    if path.is_dir():
        return "routellm"
    if path.suffix.lower() == ".jsonl":
        return "cascade"
    with path.open(encoding="utf-8") as fh:
        header = fh.readline()
    if "|total_cost" in header:
        return "routerbench"
    if header.startswith("prompt,"):
        return "routellm"
    raise UserError(f"cannot tell the log format of {path}; pass --format {'|'.join(LOG_FORMATS)}")
