"""The drift guard in the workflow: a router that asks the configured one, then tightens when told to.

At level 0 it changes nothing. At level k < LEVELS a lower tier's accepted answer must also reach
t + (1 - t) k / LEVELS (t: the router's own threshold for it); at LEVELS every lower tier escalates,
so the strongest tier answers everything. The last tier's decision is never touched (the workflow
stops there anyway). The level is the monitor's (`cascade.audit.monitor`); the recorded threshold
stays the router's own and the reason says what the guard did, so traces and learners see both.
"""

from __future__ import annotations

from cascade.audit.monitor import LEVELS, Monitor, tightened
from cascade.protocols import DecideContext, Router
from cascade.types import Decision


class GuardedRouter:
    """`inner`'s decisions, tightened by `monitor.level`."""

    def __init__(self, inner: Router, monitor: Monitor) -> None:
        self.inner = inner
        self.monitor = monitor

    def decide(self, ctx: DecideContext) -> Decision:
        decision = self.inner.decide(ctx)
        level = self.monitor.level
        if level == 0 or decision.action != "accept" or ctx.tier_index >= ctx.n_tiers - 1:
            return decision
        if level >= LEVELS or decision.threshold is None:
            return Decision("escalate", f"{decision.reason}; drift guard: every query goes up", decision.threshold)
        bar = tightened(decision.threshold, level)
        if ctx.verdict.confidence >= bar:
            return decision
        guard = f"drift guard level {level}/{LEVELS}: confidence {ctx.verdict.confidence:.2f} < {bar:.2f}"
        return Decision("escalate", f"{decision.reason}; {guard}", decision.threshold)
