"""A rule-based pre-router that picks the starting tier and token budgets from query features.

The features themselves (`query_features`, `task_of`, ...) live in the core, `cascade.io.features`, so a
learned pre-router and the correctness scorer train on exactly what these rules match on; they are
re-exported here for the routers' users.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cascade.config.schema import Regex, TierConfig
from cascade.errors import ConfigError
from cascade.io.features import LONG_WORDS, TASKS, Feature, length_scale, query_features, question_word, task_of
from cascade.registry import BuildContext, register
from cascade.types import RoutePlan
from routers._tiers import Loc, check_tier_names

__all__ = [
    "LONG_WORDS",
    "TASKS",
    "Feature",
    "FeaturesConfig",
    "FeaturesPreRouter",
    "Rule",
    "When",
    "build_features",
    "length_scale",
    "query_features",
    "question_word",
    "task_of",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class When(_Strict):
    """Conditions of a rule; all given ones must hold. `pattern` is `re.search`ed (add `(?i)` to ignore case)."""

    task: list[str] | None = None
    min_words: int | None = Field(default=None, ge=0)
    max_words: int | None = Field(default=None, ge=0)
    pattern: Regex | None = None

    @field_validator("task", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("task")
    @classmethod
    def _known_tasks(cls, value: list[str] | None) -> list[str] | None:
        """Accept `reasoning-long` for `reasoning_long`; reject typos instead of never matching."""
        if value is None:
            return None
        names = [name.strip().lower().replace("-", "_") for name in value]
        unknown = [name for name in names if name not in TASKS]
        if unknown:
            raise ValueError(f"unknown task {unknown[0]!r}; tasks are {', '.join(TASKS)}")
        return names

    @model_validator(mode="after")
    def _ordered(self) -> When:
        if self.min_words is not None and self.max_words is not None and self.min_words > self.max_words:
            raise ValueError("min_words must not exceed max_words")
        return self

    def matches(self, query: str, features: dict[str, Feature]) -> bool:
        words = _count(features, "words")
        return (
            (self.task is None or features["task"] in self.task)
            and (self.min_words is None or words >= self.min_words)
            and (self.max_words is None or words <= self.max_words)
            and (self.pattern is None or re.search(self.pattern, query) is not None)
        )

    def describe(self) -> str:
        parts = [f"task={'|'.join(self.task)}"] if self.task else []
        parts += [f"words>={self.min_words}"] if self.min_words is not None else []
        parts += [f"words<={self.max_words}"] if self.max_words is not None else []
        parts += [f"pattern={self.pattern!r}"] if self.pattern is not None else []
        return ", ".join(parts) or "always"


class Rule(_Strict):
    """If `when` holds: start at `start_tier`, do not call the tiers in `skip` (`why` says why, in
    the trace), and set (`max_tokens`) or scale (`token_scale`) budgets."""

    when: When = Field(default_factory=When)
    start_tier: str | None = None
    skip: list[str] = Field(default_factory=list)
    why: str = ""
    max_tokens: dict[str, Annotated[int, Field(gt=0)]] = Field(default_factory=dict)
    token_scale: float | None = Field(default=None, gt=0)


class FeaturesConfig(_Strict):
    """First matching rule wins; `scale_with_length` grows budgets with query length (see `length_scale`)."""

    rules: list[Rule] = Field(default_factory=list)
    scale_with_length: bool = False
    base_words: int = Field(default=50, gt=0)
    max_scale: float = Field(default=4.0, ge=1.0)


class FeaturesPreRouter:
    """Plans a route from `query_features`: the first matching rule, else tier 0 with tier budgets.

    A tier's budget is the rule's `max_tokens[tier]` if given, else
    `round(tier.max_tokens * token_scale * length_scale(words))` (each factor 1 when unused).
    """

    def __init__(
        self,
        rules: Sequence[Rule] = (),
        *,
        scale_with_length: bool = False,
        base_words: int = 50,
        max_scale: float = 4.0,
    ) -> None:
        self.rules = list(rules)
        self.scale_with_length = scale_with_length
        self.base_words = base_words
        self.max_scale = max_scale

    def match(self, query: str, features: dict[str, Feature]) -> tuple[int, Rule] | None:
        """The first rule whose conditions hold, with its index."""
        return next(((i, r) for i, r in enumerate(self.rules) if r.when.matches(query, features)), None)

    def plan(self, query: str, tiers: list[TierConfig]) -> RoutePlan:
        features = query_features(query)
        found = self.match(query, features)
        rule = found[1] if found else None
        start = _tier_index(tiers, rule.start_tier) if rule and rule.start_tier else 0
        scale = self._length_scale(features)
        budgets = {tier.name: _budget(tier, rule, scale) for tier in tiers}
        skip = tuple(rule.skip) if rule else ()
        called = next((t.name for t in tiers[start:] if t.name not in skip), tiers[-1].name)
        reason = self._reason(found, called, scale, features)
        return RoutePlan(start_tier=start, max_tokens=budgets, reason=reason, features=features, skip=skip)

    def _length_scale(self, features: dict[str, Feature]) -> float:
        if not self.scale_with_length:
            return 1.0
        return length_scale(int(_count(features, "words")), self.base_words, self.max_scale)

    def _reason(self, found: tuple[int, Rule] | None, start: str, scale: float, features: dict[str, Feature]) -> str:
        head = f"rule {found[0] + 1} ({found[1].when.describe()})" if found else "no rule matched"
        actions = [f"start at {start!r}", *(_token_actions(found[1]) if found else [])]
        if scale != 1.0:
            actions.append(f"tokens x{scale:.2f} for {_count(features, 'words'):.0f} words")
        return f"{head} → {', '.join(actions)}"


def _count(features: dict[str, Feature], key: str) -> float:
    value = features.get(key)
    return float(value) if isinstance(value, int | float) else 0.0


def _tier_index(tiers: list[TierConfig], name: str) -> int:
    for i, tier in enumerate(tiers):
        if tier.name == name:
            return i
    raise ValueError(f"pre-router names unknown tier {name!r}")


def _budget(tier: TierConfig, rule: Rule | None, length: float) -> int:
    if rule and tier.name in rule.max_tokens:
        return rule.max_tokens[tier.name]
    scale = (rule.token_scale if rule and rule.token_scale else 1.0) * length
    return max(1, round(tier.max_tokens * scale))


def _token_actions(rule: Rule) -> list[str]:
    actions = [f"skip {', '.join(rule.skip)}" + (f" ({rule.why})" if rule.why else "")] if rule.skip else []
    actions += [f"tokens x{rule.token_scale:g}"] if rule.token_scale else []
    return actions + [f"max_tokens {name}={n}" for name, n in rule.max_tokens.items()]


def _tier_refs(rules: list[Rule]) -> Iterator[tuple[str, Loc]]:
    """Every tier name the rules mention, with the field that mentions it."""
    for i, rule in enumerate(rules):
        if rule.start_tier is not None:
            yield rule.start_tier, ("pre_router", "rules", i, "start_tier")
        for j, name in enumerate(rule.skip):
            yield name, ("pre_router", "rules", i, "skip", j)
        for name in rule.max_tokens:
            yield name, ("pre_router", "rules", i, "max_tokens", name)


@register("pre_router", "features", FeaturesConfig)
def build_features(config: FeaturesConfig, ctx: BuildContext) -> FeaturesPreRouter:
    check_tier_names(ctx, _tier_refs(config.rules))
    everything = {tier.name for tier in ctx.config.tiers}
    for i, rule in enumerate(config.rules):
        if everything <= set(rule.skip):
            where = ctx.config.where(("pre_router", "rules", i, "skip"))
            raise ConfigError(f"{where}: a rule may not skip every tier", source=ctx.config._source)
    return FeaturesPreRouter(
        config.rules,
        scale_with_length=config.scale_with_length,
        base_words=config.base_words,
        max_scale=config.max_scale,
    )
