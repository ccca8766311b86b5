"""Training examples for a token-budget model: correct answers in the store, or in a log.

From the store: every attempt of the tier in a labelled run that was judged right (a gold value
judges every attempt, a thumb only the final one, as the scorer's sources read them) and not cut
off at its cap; its features are built from the query and the attempts before it, exactly as the
live policy builds them. From a log (`cascade eval --log`, whose cells record completion tokens):
the model's correct answers, with the query's features only (a log has no lower tiers' attempts).
"""

from __future__ import annotations

from collections.abc import Iterator

from cascade.eval.data.logs import LogTable
from cascade.store.base import VALUED_KINDS, LabelledRun, Store, is_correct
from cascade.store.paging import iter_labelled
from cascade.token_budget.features import budget_features
from cascade.token_budget.train import BudgetExample


def run_examples(run: LabelledRun, tier: str) -> Iterator[BudgetExample]:
    """The tier's judged-correct, uncut attempts in one labelled run."""
    record, feedback = run.run, run.feedback
    attempts = record.result().attempts
    gold = feedback.value if feedback.kind in VALUED_KINDS else None
    for index, attempt in enumerate(attempts):
        if attempt.tier != tier or attempt.answer is None or attempt.completion_tokens <= 0:
            continue
        if attempt.budget is not None and attempt.budget.truncated:
            continue
        if gold is not None:
            correct = is_correct(feedback.kind, gold, attempt.answer)
        else:
            correct = run.correct and (index == len(attempts) - 1 or attempt.decision == "accept")
        if correct:
            features = budget_features(record.query, attempts[:index])
            yield BudgetExample(features, attempt.completion_tokens, record.run_id)


def store_examples(store: Store, tier: str, *, config_name: str | None = None) -> list[BudgetExample]:
    """Every correct answer of `tier` in the store's labelled runs (the latest feedback per run)."""
    latest: dict[str, LabelledRun] = {}
    for run in iter_labelled(store):
        if config_name is None or run.run.config_name == config_name:
            latest[run.run.run_id] = run
    return [example for run in latest.values() for example in run_examples(run, tier)]


def log_examples(log: LogTable, model: str) -> list[BudgetExample]:
    """Every correct answer of `model` in a log whose cells record completion tokens."""
    examples = []
    for item in log.items:
        cell = item.tiers.get(model)
        if cell is not None and cell.correct and cell.completion_tokens:
            examples.append(BudgetExample(budget_features(item.prompt), cell.completion_tokens, item.id))
    return examples
