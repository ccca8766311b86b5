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
from cascade.io.conversation import Conversation, conversation_of
from cascade.types import Allotment, Attempt, Completion, RoutePlan, Usage

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

    def max_tokens_for(
        self,
        tier: TierRuntime,
        query: str | Conversation,
        attempts: Sequence[Attempt],
        plan: RoutePlan,
        allotment: Allotment | None = None,
    ) -> int:
        """Each of the tier's calls' completion cap, so that all of them together fit what is left:
        the tier's budget for this query (its budget policy's `allotment`) under the pre-router's,
        and under the caller's own `max_tokens`."""
        cap = plan.max_tokens.get(tier.config.name, tier.config.max_tokens)
        if allotment is not None:
            cap = min(cap, allotment.max_tokens)
        if not isinstance(query, str) and query.output.max_tokens is not None:
            cap = min(cap, query.output.max_tokens)
        ledger = current_ledger()
        if ledger is None:
            return cap
        asks = self.asks(tier, query, cap, allotment)
        left = ledger.left()
        if left.tokens is not None:
            cap = min(cap, (left.tokens - sum(a.prompt_tokens for a in asks)) // len(asks))
        output_price = math.fsum(a.output_price for a in asks)
        if left.usd is not None and output_price > 0:
            usd = left.usd - math.fsum(a.prompt_tokens * a.input_price for a in asks)
            cap = affordable_tokens(usd, output_price, cap)
        return max(1, cap)

    def blocks(
        self, tier: TierRuntime, query: str | Conversation, attempts: Sequence[Attempt], plan: RoutePlan
    ) -> str | None:
        """Why a budget forbids calling `tier` now (not one completion token affordable), or None."""
        ledger = current_ledger()
        if ledger is None:
            return None
        need = sum((a.usage(1) for a in self.asks(tier, query, 1)), Usage())
        what = f"tier '{tier.config.name}' not called"
        return next((w for a in ledger.accounts if (w := shortfall(a.name, a.peek(), need, what))), None)

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

    def worst_case(self, tier: TierRuntime, query: str | Conversation, cap: int) -> Usage:
        """The most the tier's calls can cost at completion cap `cap`: what is reserved for them."""
        return sum((a.usage(cap) for a in self.asks(tier, query, cap)), Usage())

    def asks(
        self, tier: TierRuntime, query: str | Conversation, cap: int, allotment: Allotment | None = None
    ) -> list[Ask]:
        chat = conversation_of(query) if isinstance(query, str) else query
        meter = self.meter or MeteredCompleter(tier.completer)
        return [
            meter.ask(tier.request(spec, chat, max_tokens=cap, index=0, allotment=allotment)) for spec in tier.specs
        ]


def spent_by(attempts: Sequence[Attempt]) -> Usage:
    """What `attempts` cost together (a resumed run's budget starts from it)."""
    return Usage(
        sum(a.prompt_tokens for a in attempts),
        sum(a.completion_tokens for a in attempts),
        math.fsum(a.cost_usd for a in attempts),
    )
