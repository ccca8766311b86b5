"""A person's approval before an expensive tier: what they are asked and how their reply is read.

A tier with `approve: true` is called only after the workflow's `approve` node has asked, with
LangGraph's `interrupt()`, and been resumed with `Command(resume=...)`. The question is an
`ApprovalRequest` (as a plain dict, so any LangGraph client can show it); the reply is `True` /
`False`, or a mapping `{"approve": bool, "note": "..."}` whose note is kept in the record.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from cascade.errors import UserError
from cascade.io.conversation import Conversation
from cascade.run.budget_plan import Budget
from cascade.run.tiers import TierRuntime
from cascade.types import ApprovalRequest, Attempt, RoutePlan, answering_attempt


def approval_request(
    tier: TierRuntime, chat: Conversation, attempts: Sequence[Attempt], plan: RoutePlan, budget: Budget
) -> ApprovalRequest:
    """The question put to the person: which tier, the most it may cost, what was spent so far."""
    max_tokens, worst = budget.worst_case(tier, chat, plan)
    priced = worst.cost_usd > 0 or any(spec.prices is not None for spec in tier.specs)
    max_cost = worst.cost_usd if priced else None
    return ApprovalRequest(
        tier=tier.config.name,
        model=tier.config.label,
        query=chat.query,
        max_tokens=max_tokens,
        max_cost_usd=max_cost,
        spent_tokens=sum(a.total_tokens for a in attempts),
        spent_cost_usd=sum(a.cost_usd for a in attempts),
        best_answer=answered.answer if (answered := answering_attempt(list(attempts))) else None,
    )


def read_reply(reply: object) -> tuple[bool, str]:
    """(approved, note) from the value given to `Command(resume=...)`; anything else is a UserError."""
    if isinstance(reply, bool):
        return reply, ""
    if isinstance(reply, Mapping) and isinstance(reply.get("approve"), bool) and set(reply) <= {"approve", "note"}:
        note = reply.get("note", "")
        if isinstance(note, str):
            return reply["approve"], note.strip()
    raise UserError(
        f"an approval is resumed with Command(resume=True/False) or "
        f"Command(resume={{'approve': bool, 'note': str}}), got {reply!r}"
    )
