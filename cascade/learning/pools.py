"""The threshold controller's evidence, kept in pools by who judged it, and how much each pool counts.

- The **reference pool** holds runs judged against the strongest tier's answer (`RunEvidence.weight`
  re-weights an audited run by its sampling rate). Escalations judge only the answers the router
  doubted, audits only (a share of) those it accepted: together, weighted, they stand for the whole
  traffic, so the pool counts only for a learner that reads both (`representative`). Otherwise
  references still judge the lower attempts of feedback-judged runs and earn keys their trust.
- A **feedback pool** per judge (an API key, or the operator: feedback without a key) holds the runs
  that judge gave feedback on, as the issue-14 controller kept them. The pools share one window;
  when it is full the judge holding the most runs gives up its oldest, so a flood from one key
  evicts its own evidence, not another's.

Each pool is an estimate of its own (`controller.estimate`); they are mixed in proportion to their
runs, a key's pool weighed by its trust and capped at its share of the reference pool
(`KeyTrust.shares`), so a key's feedback moves the mixed estimate by at most `key_share` of the way.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from cascade.learning.run_evidence import RunEvidence
from cascade.learning.trust import OPERATOR, KeyTrust


class EvidencePools:
    """Reference-judged and feedback-judged runs by run id; a run judged again replaces its entry."""

    def __init__(self, window: int, trust: KeyTrust, representative: bool = True) -> None:
        self.window = window
        self.trust = trust
        self.representative = representative
        self.reference: OrderedDict[str, RunEvidence] = OrderedDict()
        self.feedback: dict[str, OrderedDict[str, RunEvidence]] = {}

    def add_reference(self, run_id: str, run: RunEvidence) -> None:
        self.reference.pop(run_id, None)
        self.reference[run_id] = run
        while len(self.reference) > self.window:
            self.reference.popitem(last=False)

    def add_feedback(self, judge: str, run_id: str, run: RunEvidence) -> None:
        pool = self.feedback.setdefault(judge, OrderedDict())
        pool.pop(run_id, None)
        pool[run_id] = run
        while sum(len(p) for p in self.feedback.values()) > self.window:
            fullest = max(self.feedback, key=lambda j: len(self.feedback[j]))
            self.feedback[fullest].popitem(last=False)
            if not self.feedback[fullest]:
                del self.feedback[fullest]

    def __iter__(self) -> Iterator[RunEvidence]:
        yield from self.reference.values()
        for pool in self.feedback.values():
            yield from pool.values()

    def __len__(self) -> int:
        return len(self.reference) + sum(len(p) for p in self.feedback.values())

    def weighted(self) -> list[tuple[float, list[RunEvidence]]]:
        """The pools that count, each with its weight in the mix (none: nothing to learn from yet)."""
        n_reference, shares = self._weights()
        out = [(n_reference, list(self.reference.values()))] if n_reference else []
        out += [(shares[j], list(p.values())) for j, p in self.feedback.items() if shares[j] > 0.0]
        return out

    def item_weight(self, judge: str | None) -> float:
        """What one run judged by `judge` (None: the reference) counts for now, at most 1."""
        n_reference, shares = self._weights()
        if judge is None:
            return 1.0 if n_reference else 0.0
        held = len(self.feedback.get(judge, ()))
        return min(1.0, shares.get(judge, 0.0) / held) if held else 0.0

    def _weights(self) -> tuple[float, dict[str, float]]:
        n_reference = float(len(self.reference)) if self.representative else 0.0
        return n_reference, self.trust.shares(n_reference, {j: float(len(p)) for j, p in self.feedback.items()})

    def to_state(self) -> dict[str, Any]:
        return {
            "reference": [[run_id, run.to_json()] for run_id, run in self.reference.items()],
            "feedback": {j: [[run_id, run.to_json()] for run_id, run in p.items()] for j, p in self.feedback.items()},
        }

    @classmethod
    def from_state(
        cls, window: int, trust: KeyTrust, state: Mapping[str, Any], representative: bool = True
    ) -> EvidencePools:
        """Pools as saved; a state of the controller before pools (`runs`, all feedback) is the operator's pool."""
        pools = cls(window, trust, representative)
        for run_id, data in state.get("reference", []):
            pools.add_reference(str(run_id), RunEvidence.from_json(data))
        for judge, entries in state.get("feedback", {}).items():
            for run_id, data in entries:
                pools.add_feedback(str(judge), str(run_id), RunEvidence.from_json(data))
        for i, data in enumerate(state.get("runs", [])):
            pools.add_feedback(OPERATOR, f"saved-{i}", RunEvidence.from_json(data))
        return pools


def mixed(parts: Sequence[tuple[float, Any]]) -> Any:
    """The weighted mean of arrays (or numbers) by their weights."""
    total = sum(weight for weight, _ in parts)
    return sum(weight * value for weight, value in parts) / total
