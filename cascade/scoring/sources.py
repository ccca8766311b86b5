"""Labelled examples for the scorer from users' runs in the store.

A gold value (a correction or a label) judges every attempt of a run: an escalated tier's answer
was right or wrong too. A thumb judges only the answer the user saw, the final attempt's. Runs
without feedback teach nothing and are skipped. (Logged outputs of several models are the other
source: `cascade.eval.offline` builds their inputs for a given cascade.)
"""

from __future__ import annotations

from collections.abc import Iterator

from cascade.scoring.inputs import ScoringInput
from cascade.store.base import VALUED_KINDS, LabelledRun, Store, is_correct
from cascade.store.paging import iter_labelled


def labelled_examples(run: LabelledRun) -> Iterator[tuple[ScoringInput, bool]]:
    """Each judged attempt of one labelled run, with whether its answer was correct."""
    record, feedback = run.run, run.feedback
    attempts = record.result().attempts
    gold = feedback.value if feedback.kind in VALUED_KINDS else None
    for index, attempt in enumerate(attempts):
        if attempt.error is not None:
            continue
        if gold is not None:
            correct = is_correct(feedback.kind, gold, attempt.answer)
        elif index == len(attempts) - 1 or attempt.decision == "accept":
            correct = run.correct
        else:
            continue
        yield ScoringInput.from_attempts(record.query, attempts, index), correct


def store_examples(store: Store, *, config_name: str | None = None) -> tuple[list[ScoringInput], list[bool]]:
    """Every judged attempt of every labelled run (latest feedback per run), optionally of one config."""
    latest: dict[str, LabelledRun] = {}
    for run in iter_labelled(store):
        if config_name is None or run.run.config_name == config_name:
            latest[run.run.run_id] = run
    inputs, labels = [], []
    for run in latest.values():
        for inp, correct in labelled_examples(run):
            inputs.append(inp)
            labels.append(correct)
    return inputs, labels
