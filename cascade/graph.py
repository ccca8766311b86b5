"""The cascade as a LangGraph workflow.

    START ─→ [route] ─→ tiers ─→ END

    tiers: tier i = start, start + 1, ...: generate → verify → decide
           accept, last tier or budget reached → done; otherwise escalate to tier i + 1

`route` (only present when a pre-router is configured) picks the starting tier and token
budgets. `tiers` runs the tier turns in order; each turn is generate → verify → decide. The turns
are a loop inside one node, not one node each, because every LangGraph step costs 0.35-0.7 ms
here (measured, see benchmarks/overhead.py) and the cascade's own overhead must stay under 2 ms
a query. Each turn is still visible as it happens: it is written to LangGraph's custom stream
(`stream_mode="custom"`), and every attempt, failures included, is appended to `attempts`,
which is what the trace renders and evaluation replays.
"""

from __future__ import annotations

import time
from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import StreamWriter

from cascade.budget import Budget
from cascade.conversation import Conversation, conversation_of
from cascade.errors import ProviderError
from cascade.protocols import DecideContext
from cascade.tiers import TierRuntime
from cascade.types import Attempt, RoutePlan

NO_PLAN = RoutePlan()


class CascadeState(TypedDict, total=False):
    query: str  # the last user turn: what routers and verifiers judge
    conversation: Conversation  # the whole input and its output contract (a plain query if absent)
    tag: str | None
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
        graph.add_node("tiers", self.run_tiers)
        if self.pre_router is not None:
            graph.add_node("route", self.route)
            graph.add_edge(START, "route")
            graph.add_conditional_edges("route", _after_route, ["tiers", END])
        else:
            graph.add_edge(START, "tiers")
        graph.add_edge("tiers", END)
        return graph

    async def route(self, state: CascadeState) -> CascadeState:
        plan = self.pre_router.plan(state["query"], [t.config for t in self.tiers])
        start = min(max(plan.start_tier, 0), len(self.tiers) - 1)
        chat = state.get("conversation") or state["query"]
        return {"plan": plan, "tier_index": start, "stop_reason": self._blocked(chat, [], start, plan)}

    async def run_tiers(self, state: CascadeState, writer: StreamWriter) -> CascadeState:
        """Tier turns from the starting tier until one accepts, the last tier answers, or the budget stops it.

        A turn that would escalate but cannot has its decision turned into `stop`, with the reason.
        """
        query, plan = state["query"], state.get("plan", NO_PLAN)
        chat = state.get("conversation") or conversation_of(query)
        attempts = list(state.get("attempts", []))
        index = state.get("tier_index", 0)
        while True:
            record = await self._generate_verify_decide(
                self.tiers[index], index, chat, plan, attempts[:], state.get("tag")
            )
            if record.decision == "accept":
                why = "accepted"
            else:
                index += 1
                last = index >= len(self.tiers)
                why = "last tier reached" if last else self._blocked(chat, [*attempts, record], index, plan)
                if why and record.decision == "escalate":
                    record = record.model_copy(update={"decision": "stop", "reason": f"{record.reason}; {why}"})
            attempts.append(record)
            writer(record)
            if why:
                return {"attempts": attempts, "stop_reason": why}

    async def _generate_verify_decide(
        self,
        tier: TierRuntime,
        index: int,
        chat: Conversation,
        plan: RoutePlan,
        previous: list[Attempt],
        tag: str | None = None,
    ) -> Attempt:
        started = time.perf_counter()
        max_tokens = self.budget.max_tokens_for(tier, chat, previous, plan)
        try:
            first = await tier.sample(chat, max_tokens=max_tokens, index=0)
        except ProviderError as exc:
            return tier.failed_attempt(exc, started)
        invalid = tier.read(first, chat).invalid
        if invalid is not None:
            return tier.invalid_attempt(first, invalid, chat, started)
        samples, verdict, answer = await tier.verify(
            chat,
            first,
            tier_index=index,
            previous=previous,
            max_tokens=max_tokens,
            before_draw=lambda drawn: self.budget.check_draw(tier, previous, drawn),
        )
        decision = self.router.decide(
            DecideContext(chat.query, tier.config, index, len(self.tiers), verdict, answer, previous, tag, chat.history)
        )
        return tier.attempt(samples, verdict, answer, decision, started, tier.tool_calls_of(samples, answer, chat))

    def _blocked(self, query: str | Conversation, attempts: list[Attempt], index: int, plan: RoutePlan) -> str:
        return self.budget.blocks(self.tiers[index], query, attempts, plan) or ""


def _after_route(state: CascadeState) -> str:
    return END if state.get("stop_reason") else "tiers"
