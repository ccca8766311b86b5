"""The `audit:` block of a cascade config: how many served answers are checked against the strongest tier."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class AuditConfig(BaseModel):
    """`audit: {rate: 0.05, min_agreement: 0.97}`.

    `rate`: the share of answers served below the last tier that are also sent to the last tier (off
    the request path) to compare. `seed` salts the choice, which is a hash of the run id: stable,
    the same in every process, and checkable afterwards. `min_agreement`: the promise; when the
    always-valid interval of the agreement over a recent stretch falls below it, the cascade
    tightens its thresholds (up to escalating everything) until the evidence says the promise holds
    again. `confidence`: the intervals' level. `false_probe_rate`: how often, per answer served, the
    label-free drift trigger may start a probe on traffic that did not change (`cascade.audit.shift`;
    a probe escalates ~50 runs: lower catches a swapped model later, higher costs more escalations).
    `concurrency` / `max_queue`: audits in flight and waiting; beyond them an audit is dropped and
    counted against the promise. `drain_s`: how long closing (shutdown, the end of a script) waits
    for audits in flight.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    rate: float = Field(gt=0.0, le=1.0)
    seed: int = 0
    min_agreement: float | None = Field(default=None, gt=0.0, lt=1.0)
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0)
    false_probe_rate: float = Field(default=1 / 5000, gt=0.0, lt=0.1)
    concurrency: int = Field(default=4, ge=1, le=256)
    max_queue: int = Field(default=1000, ge=0)
    drain_s: float = Field(default=30.0, ge=0.0)

    @property
    def alpha(self) -> float:
        return 1.0 - self.confidence
