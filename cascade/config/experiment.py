"""The `experiment:` block of a cascade config: variants, traffic split, sticky assignment, verdict.

experiment:
  name: cheap-first-v2          # salts the assignment; a new name reshuffles the units
  assign_by: user               # user | key | tag | run: what keeps a unit on one variant
  variants:
    control: {}                 # this config as it is
    strict:                     # this config with some fields changed (deep merge)
      overrides: {router: {threshold: 0.9}, tiers: {small: {max_tokens: 32}}}
    other: {config: other.yaml, weight: 2}   # another cascade file (relative to this one)
  value_per_correct: 0.002      # USD a right answer is worth: the verdict weighs EM against cost
  horizon: 2000                 # optional fixed-horizon test; default: always-valid sequential
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

AssignBy = Literal["user", "key", "tag", "run"]


class VariantSpec(BaseModel):
    """One arm: this config (`{}`), this config with `overrides`, or another `config` file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    weight: float = Field(default=1.0, ge=0.0)
    config: str | None = Field(default=None, min_length=1)
    overrides: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_source(self) -> VariantSpec:
        if self.config is not None and self.overrides:
            raise ValueError("a variant is either another `config` file or `overrides` of this one, not both")
        if {"experiment", "name"} & set(self.overrides):
            raise ValueError("overrides cannot change the experiment or the config's name")
        return self


class ExperimentConfig(BaseModel):
    """An A/B (or A/B/n) test of cascade variants, applied by `serve`, `cascade run` and the Python API.

    `assign_by` names the unit that always gets the same variant: the request's `user`, the API
    key, or the run's `tag`; `run` (or a unit the request does not carry) assigns each run afresh.
    `value_per_correct` (USD) turns EM and cost into one net benefit per run, the verdict's
    criterion (`price_per_token` prices tokens when runs carry no dollar cost, e.g. local models);
    without it the verdict is on EM alone. `horizon` switches from the always-valid sequential
    test (look at any time) to a fixed-horizon test on the first `horizon` labelled runs per variant.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    assign_by: AssignBy = "user"
    variants: dict[str, VariantSpec] = Field(min_length=2)
    value_per_correct: float | None = Field(default=None, gt=0)
    price_per_token: float | None = Field(default=None, ge=0)
    horizon: int | None = Field(default=None, ge=1)
    alpha: float = Field(default=0.05, gt=0, lt=1)
    min_labelled: int = Field(default=20, ge=1)

    @model_validator(mode="after")
    def _live_variants(self) -> ExperimentConfig:
        if sum(1 for v in self.variants.values() if v.weight > 0) < 2:
            raise ValueError("an experiment needs at least two variants with a positive weight")
        if any(not name.strip() for name in self.variants):
            raise ValueError("variant names must be non-empty")
        return self

    @property
    def weights(self) -> dict[str, float]:
        return {name: spec.weight for name, spec in self.variants.items()}
