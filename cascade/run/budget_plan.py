"""The workflow's view of the budget: plan each tier's token cap and stop before a tier it cannot pay.

Enforcement is per call, in `cascade.budget.metering` (reserve before, settle after). This module plans
with the same numbers, so the graph stops with a clear reason instead of calling a tier whose
calls would all be refused, and shares what is left fairly between an ensemble's members (each
member is one call; n members send the prompt n times and may each generate the cap).

`query_account` is the run's own budget (`budget:` in the config) as a metering account.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from cascade.budget.metering import (
    NOTHING,
    Ask,
    MemoryAccount,
    MeteredCompleter,
    affordable_tokens,
    current_ledger,
    shortfall,
)
from cascade.config.schema import BudgetConfig
from cascade.errors import BudgetExceededError
from cascade.io.conversation import Conversation
from cascade.types import Allotment, Attempt, Completion, CompletionRequest, RoutePlan, Usage

if TYPE_CHECKING:
    from cascade.run.tiers import TierRuntime

QUERY_ACCOUNT = "query"


class Budget:
    """Plans token caps and escalations from what the run's ledger has left."""

    def __init__(self, config: BudgetConfig, meter: MeteredCompleter | None = None):
        self.config = config
        self.meter = meter

    def query_account(self, spent: Usage = NOTHING) -> MemoryAccount | None:
        """A fresh account for one run's budget (`spent`: what a resumed run had already spent)."""
        tokens, usd = self.config.max_total_tokens, self.config.max_cost_usd
        if tokens is None and usd is None:
            return None
        return MemoryAccount(QUERY_ACCOUNT, max_tokens=tokens, max_cost_usd=usd, spent=spent)

    def planned_cap(
        self, tier: TierRuntime, chat: Conversation, plan: RoutePlan, allotment: Allotment | None = None
    ) -> int:
        """A call's completion cap before the budget: the tier's budget for this query (its budget
        policy's `allotment`) under the pre-router's, under the tier's `max_tokens`, and under the
        caller's own `max_tokens`."""
        caps = [plan.max_tokens.get(tier.config.name, tier.config.max_tokens)]
        caps += [allotment.max_tokens] if allotment is not None else []
        caps += [chat.output.max_tokens] if chat.output.max_tokens is not None else []
        return min(caps)

    def asks(self, tier: TierRuntime, requests: Sequence[CompletionRequest]) -> list[Ask]:
        """What each of a turn's requests asks of the budget (its worst case, as metering reserves it)."""
        meter = self.meter or MeteredCompleter(tier.completer)
        return [meter.ask(request) for request in requests]

    def affordable_cap(self, asks: Sequence[Ask], cap: int) -> int:
        """Each call's completion cap (at most `cap`), so that all of them together fit what is left."""
        ledger = current_ledger()
        if ledger is None:
            return cap
        left = ledger.left()
        if left.tokens is not None:
            cap = min(cap, (left.tokens - sum(a.prompt_tokens for a in asks)) // len(asks))
        output_price = math.fsum(a.output_price for a in asks)
        if left.usd is not None and output_price > 0:
            usd = left.usd - math.fsum(a.prompt_tokens * a.input_price for a in asks)
            cap = affordable_tokens(usd, output_price, cap)
        return max(1, cap)

    def refusal(self, tier: TierRuntime, asks: Sequence[Ask]) -> str | None:
        """Why a budget forbids these calls of `tier` now (not one completion token affordable), or None."""
        ledger = current_ledger()
        if ledger is None:
            return None
        need = sum((a.usage(1) for a in asks), Usage())
        what = f"tier '{tier.config.name}' not called"
        return next((w for a in ledger.accounts if (w := shortfall(a.name, a.peek(), need, what))), None)

    def blocks(self, tier: TierRuntime, chat: Conversation) -> str | None:
        """Why a budget forbids calling `tier` next (where a run starts, whether it can escalate)."""
        if current_ledger() is None:
            return None
        return self.refusal(tier, self.asks(tier, tier.requests(chat, max_tokens=1, index=0)))

    def check_draw(self, tier: TierRuntime, attempts: Sequence[Attempt], samples: Sequence[Completion]) -> None:
        """Raise BudgetExceededError unless what is left covers another sample like the last one."""
        ledger = current_ledger()
        if ledger is None or not samples:
            return
        left, last = ledger.left(), samples[-1]
        if left.tokens is not None and last.total_tokens > left.tokens:
            raise BudgetExceededError(f"token budget: another sample of '{tier.config.name}' would not fit")
        if left.usd is not None and last.cost_usd > left.usd:
            raise BudgetExceededError(f"cost budget: another sample of '{tier.config.name}' would not fit")

    def worst_case(self, tier: TierRuntime, chat: Conversation, plan: RoutePlan) -> tuple[int, Usage]:
        """The cap `tier`'s calls would get now and the most they could cost with it (what would be reserved)."""
        requests = tier.requests(chat, max_tokens=self.planned_cap(tier, chat, plan), index=0)
        asks = self.asks(tier, requests)
        cap = self.affordable_cap(asks, requests[0].max_tokens)
        return cap, sum((a.usage(cap) for a in asks), Usage())


def spent_by(attempts: Sequence[Attempt]) -> Usage:
    """What `attempts` cost together (a resumed run's budget starts from it)."""
    return Usage(
        sum(a.prompt_tokens for a in attempts),
        sum(a.completion_tokens for a in attempts),
        math.fsum(a.cost_usd for a in attempts),
    )
