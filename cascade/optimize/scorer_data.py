"""Labelled examples for the scorer: users' runs in the store, or logged outputs of a config's models.

From the store: a gold value (a correction or a label) judges every attempt of a run (an
escalated tier's answer was right or wrong too); a thumb judges only the answer the user saw, the
final attempt's; runs without feedback teach nothing and are skipped. From a log of several models'
outputs: every non-final tier of a given cascade config, item by item, judged by the log.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from cascade.config.schema import CascadeConfig
from cascade.eval.data.logs import LogTable
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


def log_examples(
    config: CascadeConfig, log: LogTable, model_map: Mapping[str, str] | None = None
) -> tuple[list[ScoringInput], list[bool]]:
    """Every non-final tier of `config` on every item of a log of its models (RouterBench, RouteLLM,
    `cascade eval --log`), as the live cascade would hand it to its verifier, with the log's verdict."""
    from cascade.eval.analysis.config_replay import tier_specs
    from cascade.eval.analysis.offline_tiers import chain_inputs, run_tier
    from cascade.io.answers import extractor

    specs = tier_specs(config, log, model_map)
    log = log.select(list(dict.fromkeys(m for s in specs for m in s.models)))
    runs = [run_tier(log, spec, extractor(tier.answer)) for spec, tier in zip(specs, config.tiers, strict=True)]
    inputs: list[ScoringInput] = []
    labels: list[bool] = []
    for j in range(len(runs) - 1):
        inputs += chain_inputs(log, runs, j)
        labels += [bool(c) for c in runs[j].correct]
    return inputs, labels
