"""The budget policies a tier names with `budget_policy: {type: ...}`: `fixed` and `learned`.

```yaml
- name: think
  model: local/qwen2.5-1.5b
  max_tokens: 384                        # the ceiling: no policy goes past it
  budget_policy:
    type: learned
    path: package://cascade/local/data/default_token_budget.json
    share: 0.9                           # this share of correct answers must fit
    levels: [128, 192, 256, 384]         # round up to one of these (few distinct prompts)
    prompt: "Use at most {budget} tokens."   # for models that take a budget in the prompt
```

Both tell the model through the same three channels: the completion cap, the budget sentence
(when `prompt` is given) and the provider's reasoning knob (`knob`, see `cascade.token_budget.knobs`).
"""

from __future__ import annotations

import math

from pydantic import Field, field_validator

from cascade.config.schema import Strict, TierConfig, resolve_data_path
from cascade.errors import ConfigError
from cascade.protocols import BudgetContext
from cascade.registry import BuildContext, register
from cascade.token_budget.features import budget_features
from cascade.token_budget.knobs import Knob, Knobs, knob_for
from cascade.token_budget.model import TokenBudgetModel
from cascade.types import Allotment


class TellConfig(Strict):
    """How a budget is told to the model, besides the cap: a sentence, the provider's knob."""

    prompt: str | None = Field(default=None, min_length=1)
    knob: Knob = "auto"
    effort_shares: tuple[float, float] = (0.25, 0.5)
    answer_tokens: int = Field(default=1024, gt=0)

    @field_validator("prompt")
    @classmethod
    def _has_budget(cls, value: str | None) -> str | None:
        if value is not None and "{budget}" not in value:
            raise ValueError("prompt must contain '{budget}', where the budget goes")
        return value


class FixedBudgetConfig(TellConfig):
    """Every query gets `tokens` (default: the tier's `max_tokens`)."""

    tokens: int | None = Field(default=None, gt=0)


class LearnedBudgetConfig(TellConfig):
    """The budget a trained `TokenBudgetModel` predicts for the query (see the module's example).

    `share` overrides the model's own; `headroom` > 1 lets the cap sit above the budget the
    sentence states (for models that overshoot what they are told); `min_tokens` is a floor."""

    path: str = Field(min_length=1)
    share: float | None = Field(default=None, gt=0.0, lt=1.0)
    levels: list[int] | None = Field(default=None, min_length=1)
    min_tokens: int = Field(default=16, gt=0)
    headroom: float = Field(default=1.0, ge=1.0, le=4.0)

    @field_validator("levels")
    @classmethod
    def _positive(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and min(value) <= 0:
            raise ValueError("levels must be positive token counts")
        return sorted(set(value)) if value is not None else None


class Teller:
    """Turns a budget into an `Allotment`: the cap, the sentence, the knob's parameters."""

    def __init__(self, config: TellConfig, tier: TierConfig, policy: str) -> None:
        self.config, self.policy = config, policy
        self.knobs = Knobs(knob_for(tier.model, config.knob), config.effort_shares, config.answer_tokens)

    def allot(self, budget: int, cap: int, ceiling: int, reason: str) -> Allotment:
        extra, cap, knob = self.knobs.params(budget, min(cap, ceiling), ceiling)
        prompt = self.config.prompt
        sentence = prompt.replace("{budget}", str(budget)) if prompt else None
        why = f"{reason}; {knob}" if knob else reason
        return Allotment(cap, sentence, extra, why, self.policy)


class FixedBudget:
    def __init__(self, config: FixedBudgetConfig, tier: TierConfig) -> None:
        self.config = config
        self.teller = Teller(config, tier, "fixed")

    def allot(self, ctx: BudgetContext) -> Allotment:
        ceiling = ctx.tier.max_tokens
        budget = min(self.config.tokens or ceiling, ceiling)
        return self.teller.allot(budget, budget, ceiling, f"fixed budget of {budget} tokens")


class LearnedBudget:
    def __init__(self, config: LearnedBudgetConfig, tier: TierConfig, model: TokenBudgetModel) -> None:
        self.config, self.model = config, model
        self.share = config.share if config.share is not None else model.share
        self.teller = Teller(config, tier, "learned")

    def allot(self, ctx: BudgetContext) -> Allotment:
        ceiling = ctx.tier.max_tokens
        features = budget_features(ctx.query, ctx.previous)
        predicted = self.model.budget(features, self.share)
        budget = self._level(min(ceiling, max(self.config.min_tokens, math.ceil(predicted))), ceiling)
        cap = math.ceil(budget * self.config.headroom)
        reason = (
            f"{predicted:.0f} tokens fit {self.share:.0%} of correct answers to queries like this "
            f"({self.model.explain(features)})"
        )
        if budget != math.ceil(predicted):
            reason += f" → level {budget}"
        return self.teller.allot(budget, cap, ceiling, reason)

    def _level(self, budget: int, ceiling: int) -> int:
        """The least level at or above `budget` (the tier's `max_tokens` above every level)."""
        if not self.config.levels:
            return budget
        return next((level for level in self.config.levels if level >= budget and level <= ceiling), ceiling)


def _tier(ctx: BuildContext) -> TierConfig:
    """The tier whose `budget_policy` is being built (its location is `tiers[i].budget_policy`)."""
    index = ctx.loc[1] if len(ctx.loc) > 1 and isinstance(ctx.loc[1], int) else None
    if index is None or ctx.loc[0] != "tiers":
        raise ConfigError(f"{ctx.config.where(ctx.loc)}: a budget policy belongs to a tier", source=ctx.config._source)
    return ctx.config.tiers[index]


@register("budget_policy", "fixed", FixedBudgetConfig)
def build_fixed(config: FixedBudgetConfig, ctx: BuildContext) -> FixedBudget:
    return FixedBudget(config, _tier(ctx))


@register("budget_policy", "learned", LearnedBudgetConfig)
def build_learned(config: LearnedBudgetConfig, ctx: BuildContext) -> LearnedBudget:
    path = resolve_data_path(config.path, ctx.config._source)
    try:
        model = TokenBudgetModel.load(path)
    except ConfigError as exc:
        where = ctx.config.where((*ctx.loc, "path"))
        raise ConfigError(f"{where}: {exc}", source=ctx.config._source) from None
    return LearnedBudget(config, _tier(ctx), model)
