"""An adaptive-threshold controller: keeps the rolling EM at a target while escalating as little as it can.

Each labelled outcome nudges every gating tier's threshold by `gain * (target - rolling EM)`, clipped
to `step` (integral control on the error of the rolling window, not of all history, so a surplus
banked during warm-up is forgotten after `window` labels instead of being spent later): EM below
target raises the bar (escalate more, pay more), above it lowers the bar (accept more, pay less).
The threshold settles where the rolling EM equals the target, the cheapest setting that reaches it,
because a lower threshold only ever accepts more cheap answers. No move happens before `min_evidence` labels
have arrived, and thresholds stay inside `[low, high]`.

Pure and I/O-free: the router feeds it labels from the store and persists `to_state()`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ControllerSettings:
    """What the controller aims for and how fast it may move; see the module docstring."""

    target_em: float
    window: int = 200
    gain: float = 0.05
    step: float = 0.02
    min_evidence: int = 50
    low: float = 0.0
    high: float = 1.0
    initial: float | None = None  # None: start at `high`, the safe end (escalate the most)

    def __post_init__(self) -> None:
        if not 0.0 <= self.low <= self.high:
            raise ValueError(f"bounds must satisfy 0 <= low <= high, got [{self.low}, {self.high}]")
        if self.window < 1 or self.min_evidence < 0 or self.step < 0 or self.gain < 0:
            raise ValueError("window must be >= 1; min_evidence, step and gain >= 0")

    @property
    def start(self) -> float:
        return self.high if self.initial is None else min(self.high, max(self.low, self.initial))


class ThresholdController:
    """Per-tier thresholds driven by labelled outcomes; `thresholds[tier]` is what a router uses."""

    def __init__(self, settings: ControllerSettings, tiers: Sequence[str]) -> None:
        self.settings = settings
        self.thresholds = dict.fromkeys(tiers, settings.start)
        self.outcomes: deque[int] = deque(maxlen=settings.window)
        self.accepted_by: dict[str, list[int]] = {}  # tier -> [accepted answers, of which correct]
        self.n_observed = 0

    def threshold(self, tier: str) -> float:
        return self.thresholds.get(tier, self.settings.start)

    @property
    def rolling_em(self) -> float | None:
        """EM over the last `window` labelled outcomes; None before any."""
        return sum(self.outcomes) / len(self.outcomes) if self.outcomes else None

    def observe(self, tier: str | None, accepted: bool, correct: bool | None) -> None:
        """One labelled run: the tier that answered, whether a gate accepted it, and whether it was right.

        Unlabelled outcomes (`correct` None) carry no evidence and change nothing.
        """
        if correct is None:
            return
        self.n_observed += 1
        self.outcomes.append(int(correct))
        if accepted and tier is not None:
            counts = self.accepted_by.setdefault(tier, [0, 0])
            counts[0], counts[1] = counts[0] + 1, counts[1] + int(correct)
        if self.n_observed >= self.settings.min_evidence:
            self._move(self.settings.target_em - sum(self.outcomes) / len(self.outcomes))

    def _move(self, error: float) -> None:
        s = self.settings
        delta = max(-s.step, min(s.step, s.gain * error))
        for tier, value in self.thresholds.items():
            self.thresholds[tier] = max(s.low, min(s.high, value + delta))

    def to_state(self) -> dict[str, Any]:
        return {
            "thresholds": dict(self.thresholds),
            "outcomes": list(self.outcomes),
            "accepted_by": {k: list(v) for k, v in self.accepted_by.items()},
            "n_observed": self.n_observed,
        }

    @classmethod
    def from_state(cls, settings: ControllerSettings, state: Mapping[str, Any]) -> ThresholdController:
        """Restore learned thresholds and evidence; `settings` come from config so they may change."""
        controller = cls(settings, list(state["thresholds"]))
        controller.thresholds = {
            k: min(settings.high, max(settings.low, float(v))) for k, v in state["thresholds"].items()
        }
        controller.outcomes.extend(int(v) for v in state["outcomes"])
        controller.accepted_by = {k: [int(v[0]), int(v[1])] for k, v in state["accepted_by"].items()}
        controller.n_observed = int(state["n_observed"])
        return controller
