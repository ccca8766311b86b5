"""Logged per-item × per-tier outputs: what each model answered, whether it was right, what it cost.

Replay evaluates policies on these tables without calling a model. Sources: our own eval runs
(JSONL, `write_log`/`read_cascade_log`), RouterBench CSVs and RouteLLM's response files (`external.py`).
Unknown correctness stays None, never counts as correct, and `select` drops such items openly.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from cascade.errors import UserError
from cascade.eval.unreadable import json_lines, reading
from cascade.types import Attempt


@dataclass(frozen=True, slots=True)
class TierLog:
    """One model's logged turn on one item. `answer` is the raw response text."""

    correct: bool | None
    cost_usd: float
    tokens: int | None = None
    answer: str | None = None
    confidence: float | None = None

    @classmethod
    def from_attempt(cls, attempt: Attempt, correct: bool | None) -> TierLog:
        """A live run's attempt as a log cell, so our own eval runs replay like external logs.

        The attempt's cost already includes its verifiers' usage (judge calls, extra samples).
        """
        return cls(correct, attempt.cost_usd, attempt.total_tokens, attempt.answer, attempt.confidence)


@dataclass
class LogItem:
    """An item and every model's logged output on it; `task` names the answer extractor."""

    id: str
    prompt: str
    tiers: dict[str, TierLog]
    task: str = "first_line"
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class LogTable:
    """Items × models. `excluded` counts items dropped for unknown correctness (see `select`)."""

    models: list[str]
    items: list[LogItem]
    source: str = ""
    fmt: str = "cascade"
    notes: list[str] = field(default_factory=list)
    excluded: int = 0
    tokens_estimated: bool = False

    def __len__(self) -> int:
        return len(self.items)

    def correct(self, model: str) -> np.ndarray:
        """1.0 where the model was right; callers must `select` first so no cell is unknown."""
        return np.array([1.0 if item.tiers[model].correct else 0.0 for item in self.items])

    def cost(self, model: str) -> np.ndarray:
        return np.array([item.tiers[model].cost_usd for item in self.items], dtype=float)

    def tokens(self, model: str) -> np.ndarray:
        """Tokens per item; NaN where unknown."""
        values = [item.tiers[model].tokens for item in self.items]
        return np.array([math.nan if v is None else float(v) for v in values])

    def has_answers(self, model: str) -> bool:
        return any(item.tiers[model].answer for item in self.items)

    def has_confidence(self, model: str) -> bool:
        return any(item.tiers[model].confidence is not None for item in self.items)

    def select(self, models: Sequence[str]) -> LogTable:
        """Only these models, and only items whose correctness is known for all of them."""
        missing = [m for m in models if m not in self.models]
        if missing:
            raise UserError(f"unknown model(s) {missing}; the log has: {', '.join(self.models)}")
        keep, dropped = [], 0
        for item in self.items:
            if any(item.tiers[m].correct is None for m in models):
                dropped += 1
                continue
            keep.append(replace(item, tiers={m: item.tiers[m] for m in models}))
        notes = list(self.notes)
        if dropped:
            notes.append(f"{dropped} item(s) excluded: correctness unknown for at least one chosen model")
        return replace(self, models=list(models), items=keep, excluded=self.excluded + dropped, notes=notes)

    def subset(self, indices: Sequence[int]) -> LogTable:
        return replace(self, items=[self.items[i] for i in indices])


def write_log(table: LogTable, path: str | Path) -> None:
    """Our own cache format: one JSON object per item, with every tier's `TierLog` fields."""
    with Path(path).open("w", encoding="utf-8") as fh:
        header = {"models": table.models, "source": table.source, "notes": table.notes}
        fh.write(json.dumps({"cascade_log": header}) + "\n")
        for item in table.items:
            record = {"id": item.id, "prompt": item.prompt, "task": item.task, "meta": item.meta}
            record["tiers"] = {m: asdict(t) for m, t in item.tiers.items()}
            fh.write(json.dumps(record) + "\n")


def read_cascade_log(path: str | Path) -> LogTable:
    """A log written by `write_log` (or by hand: the header line is optional)."""
    items, models, source = [], [], str(path)
    for _, record in json_lines(Path(path), "log"):
        if "cascade_log" in record:
            models = list(record["cascade_log"].get("models", []))
            continue
        tiers = {m: TierLog(**t) for m, t in record["tiers"].items()}
        items.append(
            LogItem(
                str(record["id"]),
                record.get("prompt", ""),
                tiers,
                record.get("task", "first_line"),
                record.get("meta", {}),
            )
        )
    if not models and items:
        models = list(items[0].tiers)
    tokens_known = all(t.tokens is not None for item in items for t in item.tiers.values())
    return LogTable(models, items, source=source, fmt="cascade", tokens_estimated=not tokens_known)


def read_log(path: str | Path, fmt: str | None = None, **options: Any) -> LogTable:
    """Any supported log; `fmt` is routerbench, routellm or cascade (detected when None)."""
    from cascade.eval import external

    path = Path(path)
    if not path.exists():
        raise UserError(f"log not found: {path}")
    with reading(path, "log"):
        fmt = fmt or detect_log_format(path)
    readers = {"routerbench": external.read_routerbench, "routellm": external.read_routellm}
    if fmt not in (*readers, "cascade"):
        raise UserError(f"unknown log format {fmt!r}; one of: routerbench, routellm, cascade")
    with reading(path, "log", fmt):
        if fmt == "routellm":
            table = external.read_routellm(path, **options)
        else:
            table = external.read_routerbench(path) if fmt == "routerbench" else read_cascade_log(path)
    if not table.models or not table.items:
        raise UserError(f"log {path} ({fmt}) has no {'models' if not table.models else 'items'}")
    return table


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
    raise UserError(f"cannot tell the log format of {path}; pass --format routerbench|routellm|cascade")
