"""The cascade as a LangGraph workflow.

    route → generate → verify → decide ─accept──────────────→ finalize
               ↑                   └─escalate→ escalate ─┬──→ finalize (last tier / budget)
               └─────────────────────────────────────────┘
    generate ─(provider failed)→ escalate

Each node is a small function returning partial state; every attempt (including failures)
is appended to `attempts`, which is what the trace renders and evaluation replays.
"""

from __future__ import annotations

import time
from typing import Any, Literal, TypedDict

from langgraph.graph import END, START, StateGraph

from cascade.budget import Budget
from cascade.errors import ProviderError
from cascade.protocols import DecideContext, VerifyContext
from cascade.tiers import TierRuntime
from cascade.types import Attempt, Completion, RoutePlan, Verdict


class CascadeState(TypedDict, total=False):
    query: str
    plan: RoutePlan
    tier_index: int
    attempts: list[Attempt]
    samples: list[Completion]
    answers: list[str | None]
    verdict: Verdict | None
    max_tokens: int
    error: str | None
    started: float
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
        graph.add_node("route", self.route)
        graph.add_node("generate", self.generate)
        graph.add_node("verify", self.verify)
        graph.add_node("decide", self.decide)
        graph.add_node("escalate", self.escalate)
        graph.add_node("finalize", self.finalize)
        graph.add_edge(START, "route")
        graph.add_conditional_edges("route", self.after_escalate)
        graph.add_conditional_edges("generate", self.after_generate)
        graph.add_edge("verify", "decide")
        graph.add_conditional_edges("decide", self.after_decide)
        graph.add_conditional_edges("escalate", self.after_escalate)
        graph.add_edge("finalize", END)
        return graph

    async def route(self, state: CascadeState) -> CascadeState:
        tiers = [t.config for t in self.tiers]
        plan = self.pre_router.plan(state["query"], tiers) if self.pre_router else RoutePlan()
        start = min(max(plan.start_tier, 0), len(self.tiers) - 1)
        return {"plan": plan, "tier_index": start, "stop_reason": self._budget_block(state, start, plan)}

    async def generate(self, state: CascadeState) -> CascadeState:
        tier = self.tiers[state["tier_index"]]
        started = time.perf_counter()
        max_tokens = self.budget.max_tokens_for(tier, state["query"], state.get("attempts", []), state["plan"])
        try:
            completion = await tier.sample(state["query"], max_tokens=max_tokens, index=0)
        except ProviderError as exc:
            failed = tier.failed_attempt(str(exc), started)
            return {"started": started, "error": str(exc), "attempts": [*state.get("attempts", []), failed]}
        answers = [tier.extract(completion.text)]
        return {"started": started, "error": None, "samples": [completion], "answers": answers, "max_tokens": max_tokens}

    async def verify(self, state: CascadeState) -> CascadeState:
        index = state["tier_index"]
        tier = self.tiers[index]
        samples, answers = list(state["samples"]), list(state["answers"])
        max_tokens = state["max_tokens"]

        async def draw() -> tuple[Completion, str | None]:
            self.budget.check_draw(tier, state.get("attempts", []), samples)
            completion = await tier.sample(state["query"], max_tokens=max_tokens, index=len(samples))
            answer = tier.extract(completion.text)
            samples.append(completion)
            answers.append(answer)
            return completion, answer

        ctx = VerifyContext(state["query"], tier.config, index, samples, answers, state.get("attempts", []), draw,
                            tier.judge, tier.extract)
        verdict = await tier.verifier.verify(ctx)
        return {"samples": samples, "answers": answers, "verdict": verdict}

    async def decide(self, state: CascadeState) -> CascadeState:
        index = state["tier_index"]
        tier = self.tiers[index]
        verdict = state["verdict"]
        assert verdict is not None
        answer = verdict.answer if verdict.answer is not None else (state["answers"][0] if state["answers"] else None)
        ctx = DecideContext(state["query"], tier.config, index, len(self.tiers), verdict, answer,
                            state.get("attempts", []))
        decision = self.router.decide(ctx)
        attempt = tier.attempt(state["samples"], verdict, answer, decision, state["started"])
        return {"attempts": [*state.get("attempts", []), attempt]}

    async def escalate(self, state: CascadeState) -> CascadeState:
        nxt = state["tier_index"] + 1
        if nxt >= len(self.tiers):
            return {"stop_reason": "last tier reached"}
        return {"tier_index": nxt, "stop_reason": self._budget_block(state, nxt, state["plan"])}

    async def finalize(self, state: CascadeState) -> CascadeState:
        """An attempt that wanted to escalate but could not becomes a `stop`, saying why."""
        attempts = state.get("attempts", [])
        if not attempts or attempts[-1].decision != "escalate":
            return {}
        last = attempts[-1]
        stopped = last.model_copy(update={"decision": "stop", "reason": f"{last.reason}; {state['stop_reason']}"})
        return {"attempts": [*attempts[:-1], stopped]}

    def after_generate(self, state: CascadeState) -> Literal["verify", "escalate"]:
        return "escalate" if state.get("error") else "verify"

    def after_decide(self, state: CascadeState) -> Literal["finalize", "escalate"]:
        return "finalize" if state["attempts"][-1].decision == "accept" else "escalate"

    def after_escalate(self, state: CascadeState) -> Literal["generate", "finalize"]:
        return "finalize" if state.get("stop_reason") else "generate"

    def _budget_block(self, state: CascadeState, index: int, plan: RoutePlan) -> str:
        return self.budget.blocks(self.tiers[index], state["query"], state.get("attempts", []), plan) or ""
