"""Label-free tuning: a reference model's answers stand in for gold answers.

Without gold, "correct" becomes "agrees with what the reference (the strongest model) answered".
Agreement is judged exactly as EM judges a prediction against a gold answer: the reference's
response is read by the item's answer extractor (a choice letter, a number, yes/no, a first line)
and becomes the one accepted answer, so "(B)" agrees with "B" and "1,000" with "1000". For free
text and code that means the same text after SQuAD normalisation (case, punctuation, articles,
whitespace): two programs that behave alike but are written differently do not agree, so on code
a cheaper model rarely agrees and the reference is kept (semantic agreement needs the program's
tests, which a label-free dataset does not have).

`relabel` replaces every logged correctness by agreement, so a log's gold columns are never read.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

from cascade.audit.agreement import same_answer
from cascade.errors import UserError
from cascade.eval.data.logs import LogItem, LogTable
from cascade.io.exact_match import extract

STRONGEST = "strongest"


def reference_model(log: LogTable, name: str) -> str:
    """The model whose answers are the reference: `name`, or for "strongest" the dearest model of the
    log (with no gold there is no accuracy to rank by; price is what a provider asks for quality)."""
    if name != STRONGEST:
        if name not in log.models:
            raise UserError(f"--reference {name!r} is not a model of the log; it has: {', '.join(log.models)}")
        return name
    return max(log.models, key=lambda m: (math.fsum(c for c in log.cost(m) if not math.isnan(c)), m))


def agrees(answer: str | None, reference: str | None, task: str, letters: Sequence[str] | None = None) -> bool:
    """Whether the response `answer` says what the response `reference` says: both read by `task`'s extractor,
    then compared as live audits compare a tier's answer with the strongest tier's (`same_answer`)."""
    return same_answer(extract(answer, task, letters), extract(reference, task, letters), task)


def relabel(log: LogTable, reference: str) -> LogTable:
    """The log with each model's correctness replaced by its agreement with `reference` on the item.

    Items whose reference response has no answer to compare with, or whose cost is unknown, are
    left out and counted (the reference's answers must be read with the log's responses)."""
    if not log.has_answers(reference):
        raise UserError(
            f"the log keeps no responses of {reference}: label-free tuning compares each model's answer with it"
        )
    items, dropped = [], 0
    for item in log.items:
        relabelled = _relabelled(item, reference)
        if relabelled is None:
            dropped += 1
        else:
            items.append(relabelled)
    notes = [*log.notes, f"correctness is agreement with {reference}'s answers; the log's gold columns are not read"]
    if dropped:
        notes.append(f"{dropped} item(s) left out: no answer of {reference} to compare with, or no cost")
    return replace(log, items=items, notes=notes, excluded=log.excluded + dropped)


def _relabelled(item: LogItem, reference: str) -> LogItem | None:
    letters = item.meta.get("letters") or None
    said = item.tiers[reference].answer
    if extract(said, item.task, letters) is None or any(math.isnan(c.cost_usd) for c in item.tiers.values()):
        return None
    tiers = {m: replace(c, correct=agrees(c.answer, said, item.task, letters)) for m, c in item.tiers.items()}
    return replace(item, tiers=tiers)
