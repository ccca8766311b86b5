"""Reference pairs from finished runs: escalations judge the lower tiers' answers for free.

A run that reached the strongest tier holds its answer and the answers of the tiers below it that
were called; each of those is one `ReferencePair` (source `escalation`, weight 1, not served).
An audit's pair (source `audit`) is made by `cascade.audit.auditor` once the strongest tier answered.
"""

from __future__ import annotations

from cascade.audit.agreement import same_answer
from cascade.store.base import ReferencePair
from cascade.types import Attempt, CascadeResult


def escalation_pairs(
    result: CascadeResult, reference: Attempt, form: str, *, config_name: str, variant: str | None
) -> list[ReferencePair]:
    """One pair per lower attempt of `result` that answered, judged against `reference` (the strongest tier's)."""
    return [
        ReferencePair(
            run_id=result.run_id,
            config_name=config_name,
            source="escalation",
            tier=attempt.tier,
            answer=attempt.answer,
            reference_tier=reference.tier,
            reference=reference.answer,
            agree=same_answer(attempt.answer, reference.answer, form),
            confidence=attempt.confidence,
            threshold=attempt.threshold,
            answer_format=form,
            variant=variant,
        )
        for attempt in result.attempts
        if attempt is not reference and attempt.answer is not None and attempt.decision != "failed"
    ]
