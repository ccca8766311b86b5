"""Per-query token and cost budget: cap each call, and refuse a step the budget cannot pay for.

Prompt tokens are not known before a call, so they are estimated at four characters a token;
the completion is capped so that the estimate plus the cap stays inside what is left.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from cascade.config import BudgetConfig
from cascade.conversation import Conversation
from cascade.errors import BudgetExceededError
from cascade.tiers import build_messages
from cascade.types import Attempt, Completion, RoutePlan

if TYPE_CHECKING:
    from cascade.tiers import TierRuntime


class Budget:
    """Decides how many tokens a call may use and whether the next step is affordable."""

    def __init__(self, config: BudgetConfig):
        self.config = config

    def max_tokens_for(
        self, tier: TierRuntime, query: str | Conversation, attempts: Sequence[Attempt], plan: RoutePlan
    ) -> int:
        wanted = plan.max_tokens.get(tier.config.name, tier.config.max_tokens)
        limit = self.config.max_total_tokens
        if limit is None:
            return wanted
        left = limit - spent_tokens(attempts) - prompt_estimate(tier, query)
        return max(1, min(wanted, left))

    def blocks(
        self, tier: TierRuntime, query: str | Conversation, attempts: Sequence[Attempt], plan: RoutePlan
    ) -> str | None:
        """Why the budget forbids calling `tier` now, or None if it may be called."""
        limit = self.config.max_total_tokens
        if limit is None and self.config.max_cost_usd is None:
            return None
        spent = spent_tokens(attempts)
        prompt = prompt_estimate(tier, query)
        if limit is not None and spent + prompt >= limit:
            return f"token budget: {spent} of {limit} spent, tier '{tier.config.name}' needs ~{prompt} prompt tokens"
        cost_limit = self.config.max_cost_usd
        if cost_limit is None:
            return None
        cost = sum(a.cost_usd for a in attempts)
        prices = tier.config.prices
        next_cost = prompt * prices.input_per_token if prices else 0.0
        if cost + next_cost >= cost_limit:
            return f"cost budget: ${cost:.6f} of ${cost_limit:.6f} spent, tier '{tier.config.name}' would exceed it"
        return None

    def check_draw(self, tier: TierRuntime, attempts: Sequence[Attempt], samples: Sequence[Completion]) -> None:
        """Raise BudgetExceededError if one more sample like the last would overrun the budget."""
        if not samples:
            return
        spent = spent_tokens(attempts) + sum(s.total_tokens for s in samples)
        limit = self.config.max_total_tokens
        if limit is not None and spent + samples[-1].total_tokens > limit:
            raise BudgetExceededError(f"token budget: another sample of '{tier.config.name}' would pass {limit}")
        cost_limit = self.config.max_cost_usd
        cost = sum(a.cost_usd for a in attempts) + sum(s.cost_usd for s in samples)
        if cost_limit is not None and cost + samples[-1].cost_usd > cost_limit:
            raise BudgetExceededError(f"cost budget: another sample of '{tier.config.name}' would pass ${cost_limit}")


def spent_tokens(attempts: Sequence[Attempt]) -> int:
    return sum(a.total_tokens for a in attempts)


def prompt_estimate(tier: TierRuntime, query: str | Conversation) -> int:
    messages = build_messages(tier.config, query)
    return sum(math.ceil((len(m["content"] or "") + len(str(m.get("tool_calls") or ""))) / 4) for m in messages)
