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
    """Decides how many tokens a call may use and whether the next step is affordable.

    A tier's call is the sum over the models it calls: an ensemble of n members sends the prompt
    n times and may generate n times the cap, so both are counted n times (each member at its price).
    """

    def __init__(self, config: BudgetConfig):
        self.config = config

    def max_tokens_for(
        self, tier: TierRuntime, query: str | Conversation, attempts: Sequence[Attempt], plan: RoutePlan
    ) -> int:
        """The completion cap of each of the tier's calls, so that all of them together fit what is left."""
        cap = plan.max_tokens.get(tier.config.name, tier.config.max_tokens)
        limit, cost_limit = self.config.max_total_tokens, self.config.max_cost_usd
        if limit is not None:
            left = limit - spent_tokens(attempts) - len(tier.specs) * prompt_estimate(tier, query)
            cap = min(cap, left // len(tier.specs))
        output_price = math.fsum(s.prices.output_per_token for s in tier.specs if s.prices)
        if cost_limit is not None and output_price > 0:
            left_usd = cost_limit - spent_cost(attempts) - prompt_cost(tier, query)
            cap = min(cap, math.floor(left_usd / output_price))
        return max(1, cap)

    def blocks(
        self, tier: TierRuntime, query: str | Conversation, attempts: Sequence[Attempt], plan: RoutePlan
    ) -> str | None:
        """Why the budget forbids calling `tier` now, or None if it may be called."""
        limit = self.config.max_total_tokens
        if limit is None and self.config.max_cost_usd is None:
            return None
        spent = spent_tokens(attempts)
        prompt = len(tier.specs) * prompt_estimate(tier, query)
        if limit is not None and spent + prompt >= limit:
            return f"token budget: {spent} of {limit} spent, tier '{tier.config.name}' needs ~{prompt} prompt tokens"
        cost_limit = self.config.max_cost_usd
        if cost_limit is None:
            return None
        cost = spent_cost(attempts)
        if cost + prompt_cost(tier, query) >= cost_limit:
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
        cost = spent_cost(attempts) + sum(s.cost_usd for s in samples)
        if cost_limit is not None and cost + samples[-1].cost_usd > cost_limit:
            raise BudgetExceededError(f"cost budget: another sample of '{tier.config.name}' would pass ${cost_limit}")


def spent_tokens(attempts: Sequence[Attempt]) -> int:
    return sum(a.total_tokens for a in attempts)


def spent_cost(attempts: Sequence[Attempt]) -> float:
    return math.fsum(a.cost_usd for a in attempts)


def prompt_estimate(tier: TierRuntime, query: str | Conversation) -> int:
    """Estimated prompt tokens of one of the tier's calls."""
    messages = build_messages(tier.config, query)
    return sum(math.ceil((len(m["content"] or "") + len(str(m.get("tool_calls") or ""))) / 4) for m in messages)


def prompt_cost(tier: TierRuntime, query: str | Conversation) -> float:
    """Estimated prompt cost of the tier's calls, summed over its models at their prices (unpriced: 0)."""
    tokens = prompt_estimate(tier, query)
    return math.fsum(tokens * s.prices.input_per_token for s in tier.specs if s.prices)
