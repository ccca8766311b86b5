"""The cascade as a LangGraph workflow.

    START ─→ route ─→ attempt(tier i) ─accept / last tier / budget──→ END
                        ↑     │
                        └─────┘ escalate: i + 1

`route` (only present when a pre-router is configured) picks the starting tier and token
budgets. `attempt` is one tier's turn: generate → verify → decide. These three stages are
plain methods inside one node rather than three nodes because each LangGraph step costs
about 0.3 ms here (measured, see benchmarks/overhead.py) and the cascade's own overhead
must stay under 2 ms a query. Every attempt, failures included, is appended to `attempts`,
which is what the trace renders and evaluation replays.
"""

from __future__ import annotations

import time
from typing import Any, Literal, TypedDict

from langgraph.graph import START, StateGraph
from langgraph.types import Command

from cascade.budget import Budget
from cascade.errors import ProviderError
from cascade.protocols import DecideContext
from cascade.tiers import TierRuntime
from cascade.types import Attempt, RoutePlan

NO_PLAN = RoutePlan()
Next = Command[Literal["attempt", "__end__"]]


class CascadeState(TypedDict, total=False):
    query: str
    plan: RoutePlan
    tier_index: int
    attempts: list[Attempt]
    stop_reason: str


class CascadeGraph:
    """Builds and runs the compiled workflow for one configured cascade."""

    def __init__(self, tiers: list[TierRuntime], router: Any, pre_router: Any, budget: Budget):
        self.tiers = tiers
        self.router = router
        self.pre_router = pre_router
        self.budget = budget
        self.compiled = self._build().compile()

    def _build(self) -> StateGraph:
        graph = StateGraph(CascadeState)
        graph.add_node("attempt", self.attempt)
        if self.pre_router is not None:
            graph.add_node("route", self.route)
            graph.add_edge(START, "route")
        else:
            graph.add_edge(START, "attempt")
        return graph

    async def route(self, state: CascadeState) -> Next:
        plan = self.pre_router.plan(state["query"], [t.config for t in self.tiers])
        start = min(max(plan.start_tier, 0), len(self.tiers) - 1)
        return _goto({"plan": plan, "tier_index": start, "stop_reason": self._blocked(state, start, plan)})

    async def attempt(self, state: CascadeState) -> Next:
        """One tier's turn; if it escalates but cannot, its decision becomes `stop` with the reason."""
        index = state.get("tier_index", 0)
        plan = state.get("plan", NO_PLAN)
        tier = self.tiers[index]
        record = await self._generate_verify_decide(tier, index, state["query"], plan, state.get("attempts", []))
        attempts = [*state.get("attempts", []), record]
        if record.decision == "accept":
            return _goto({"attempts": attempts, "stop_reason": "accepted"})
        nxt = index + 1
        why = (
            "last tier reached" if nxt >= len(self.tiers) else self._blocked({**state, "attempts": attempts}, nxt, plan)
        )
        if why and record.decision == "escalate":
            attempts[-1] = record.model_copy(update={"decision": "stop", "reason": f"{record.reason}; {why}"})
        return _goto({"attempts": attempts, "tier_index": nxt, "stop_reason": why})

    async def _generate_verify_decide(
        self, tier: TierRuntime, index: int, query: str, plan: RoutePlan, previous: list[Attempt]
    ) -> Attempt:
        started = time.perf_counter()
        max_tokens = self.budget.max_tokens_for(tier, query, previous, plan)
        try:
            first = await tier.sample(query, max_tokens=max_tokens, index=0)
        except ProviderError as exc:
            return tier.failed_attempt(str(exc), started)
        samples, verdict, answer = await tier.verify(
            query,
            first,
            tier_index=index,
            previous=previous,
            max_tokens=max_tokens,
            before_draw=lambda drawn: self.budget.check_draw(tier, previous, drawn),
        )
        decision = self.router.decide(
            DecideContext(query, tier.config, index, len(self.tiers), verdict, answer, previous)
        )
        return tier.attempt(samples, verdict, answer, decision, started)

    def _blocked(self, state: CascadeState, index: int, plan: RoutePlan) -> str:
        return self.budget.blocks(self.tiers[index], state["query"], state.get("attempts", []), plan) or ""


def _goto(update: CascadeState) -> Next:
    """Route with Command instead of conditional edges: one LangGraph step cheaper per hop."""
    goto: Literal["attempt", "__end__"] = "__end__" if update.get("stop_reason") else "attempt"
    return Command(update=update, goto=goto)
