"""The cascade as a LangGraph workflow: one node per step, the decision as a typed edge.

    START ─→ [route] ─→ generate ─→ verify ─┬─ accept ───────────────────→ END
                           ↑                ├─ stop (last tier, budget) ─→ END
                           ├──── escalate ──┤
                           └── [approve] ←──┘ approval (next tier has `approve: true`)

- `route` (only with a pre-router) picks the starting tier and the token budgets.
- `generate` calls the current tier, its token cap set by the budget: the one place a tier is called.
- `verify` runs the tier's verifier (an ensemble, self-consistency sampling included), asks the
  router, and records the attempt; an escalation that cannot happen (last tier reached, budget
  spent) is recorded as `stop` with the reason. The attempt also goes to the custom stream.
- `decide`, the conditional edge after `verify`, reads that decision: accept → END, escalate →
  `generate` of the next tier (through `approve` when that tier asks for it), stop → END.
- `approve` (only when a tier has `approve: true`) asks a person with `interrupt()`; resumed with
  `Command(resume=True)` it goes on to `generate`, with `False` it ends with the best answer so far
  and the refusal in `stop_reason` and in its step.

Every node appends a `NodeStep` (tokens, cost, latency) to `steps`, and every tier's turn an
`Attempt` to `attempts`. With a checkpointer, a run that crashes resumes from the last finished
node: the tiers that already answered are not called again.
"""

from __future__ import annotations

import copy
import operator
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Annotated, Any, Literal, TypedDict

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command, Overwrite, StreamWriter, interrupt

from cascade.completers import progress
from cascade.decision.stopping import called_from, first_called, settle
from cascade.errors import BudgetExceededError, CallOverBudgetError, ProviderError, UserError
from cascade.io.conversation import Conversation, conversation_of
from cascade.io.structured import OutputSpec
from cascade.protocols import DecideContext, PreRouter, Router
from cascade.run.approval import approval_request, read_reply
from cascade.run.budget_plan import Budget
from cascade.run.tiers import TierRuntime
from cascade.types import (
    Allotment,
    Attempt,
    BudgetTrace,
    Completion,
    EnsembleCompletion,
    MemberOutput,
    NodeStep,
    RoutePlan,
    TextDelta,
    TierStart,
    ToolCall,
    Usage,
)

NO_PLAN = RoutePlan()
MAX_TAG_CHARS = 512  # OpenAI's limit on a metadata value; learners key state by tag, so it must stay small
Branch = Literal["accept", "escalate", "approval", "stop"]


@dataclass(frozen=True, slots=True)
class Draft:
    """What `generate` hands to `verify`: the tier's first sample, or the attempt of a failed call."""

    tier: int
    max_tokens: int
    latency_s: float
    completion: Completion | None = None
    failed: Attempt | None = None
    over_budget: str = ""  # why the budget refused the call (the run stops there)
    allotment: Allotment | None = None  # the tier's token budget for this query (its budget policy's)


STATE_TYPES: tuple[type, ...] = (
    *(Attempt, NodeStep, RoutePlan, Draft, Allotment, Conversation, OutputSpec),
    *(Completion, EnsembleCompletion, MemberOutput, ToolCall),
)
"""The project's types a checkpoint holds."""


class CascadeState(TypedDict, total=False):
    query: str  # the last user turn: what routers and verifiers judge
    conversation: Conversation  # the whole input and its output contract (a plain query if absent)
    tag: str | None
    plan: RoutePlan
    next_tier: int  # the tier `generate` calls next; len(tiers) once none is left
    draft: Draft | None
    attempts: Annotated[list[Attempt], operator.add]
    steps: Annotated[list[NodeStep], operator.add]
    stop_reason: str
    stream_tokens: bool  # announce each tier and stream the last tier's text (Cascade.astream(tokens=True))


class CascadeGraph:
    """Builds the workflow of one configured cascade; `compiled` runs it without a checkpointer."""

    def __init__(
        self,
        tiers: list[TierRuntime],
        router: Router,
        pre_router: PreRouter | None,
        budget: Budget,
        *,
        last_tier_live: bool = True,
    ):
        """`last_tier_live=False` (a config with `on_reject: error`) streams no tier as it writes: the
        last tier's answer too may be refused."""
        self.tiers = tiers
        self.names = [t.config.name for t in tiers]
        self.router = router
        self.pre_router = pre_router
        self.budget = budget
        self.last_tier_live = last_tier_live
        self.needs_approval = any(t.config.approve for t in tiers)
        self.compiled = self.compile()

    def compile(self, checkpointer: BaseCheckpointSaver[Any] | None = None) -> CompiledStateGraph[CascadeState]:
        """The workflow compiled with `checkpointer` (needed to resume runs and to ask approvals)."""
        saver = with_state_types(checkpointer) if checkpointer is not None else None
        return self.builder().compile(checkpointer=saver, name="cascade")

    def builder(self) -> StateGraph[CascadeState]:
        graph = StateGraph(CascadeState)
        if self.pre_router is not None:
            graph.add_node("route", self.route)
        graph.add_node("generate", self.generate)
        graph.add_node("verify", self.verify)
        if self.needs_approval:
            graph.add_node("approve", self.approve)
        if self.pre_router is not None:
            graph.add_edge(START, "route")
            graph.add_conditional_edges("route", self.enter, ["generate", END, *(["approve"] * self.needs_approval)])
        else:
            graph.add_edge(START, "approve" if self.tiers[0].config.approve else "generate")
        graph.add_edge("generate", "verify")
        branches: dict[Branch, str] = {"accept": END, "escalate": "generate", "stop": END}
        if self.needs_approval:
            branches["approval"] = "approve"
        graph.add_conditional_edges("verify", self.decide, branches)  # type: ignore[arg-type]
        return graph

    def input(self, query: str | Conversation, tag: str | None = None, *, stream_tokens: bool = False) -> CascadeState:
        """The state a run starts from; every field is set, so a reused thread starts afresh."""
        chat = query if isinstance(query, Conversation) else conversation_of(query)
        if tag is not None and (not isinstance(tag, str) or not tag.strip()):
            raise UserError("tag must be a non-empty string (or None)")
        if tag is not None and len(tag) > MAX_TAG_CHARS:
            raise UserError(f"tag is {len(tag):,} characters; at most {MAX_TAG_CHARS} (a label, not a document)")
        return {
            "query": chat.query,
            "conversation": chat,
            "tag": tag,
            "plan": NO_PLAN,
            "next_tier": 0,
            "draft": None,
            "attempts": Overwrite([]),  # type: ignore[typeddict-item]
            "steps": Overwrite([]),  # type: ignore[typeddict-item]
            "stop_reason": "",
            "stream_tokens": stream_tokens,
        }

    async def route(self, state: CascadeState) -> CascadeState:
        assert self.pre_router is not None, "the route node exists only with a pre-router"
        started = time.perf_counter()
        plan = self.pre_router.plan(state["query"], [t.config for t in self.tiers])
        start = first_called(plan.start_tier, self.names, plan.skip)
        step = NodeStep(node="route", latency_s=time.perf_counter() - started, note=plan.reason)
        why = self.budget.blocks(self.tiers[start], chat_of(state)) or ""
        return {"plan": plan, "next_tier": start, "stop_reason": why, "steps": [step]}

    async def enter(self, state: CascadeState) -> Literal["generate", "approve", "__end__"]:
        """After `route`: the starting tier (through `approve` if it asks), or END if unaffordable."""
        if state.get("stop_reason"):
            return "__end__"
        return "approve" if self.tiers[state.get("next_tier", 0)].config.approve else "generate"

    async def generate(self, state: CascadeState, writer: StreamWriter) -> CascadeState:
        """The current tier's call under its token cap; a provider failure is handed on, not raised.

        When the run streams tokens, the custom stream first says which tier is tried (`TierStart`),
        and the last tier's text goes out as it is written (`TextDelta`): its answer is final
        whatever it says, as there is nothing left to escalate to. It is the answer itself when the
        tier's answer format is `text` (as the answer reads it: stripped), else the text the answer
        will be read from (`reasoning`), and the answer follows whole.
        """
        index, chat = state.get("next_tier", 0), chat_of(state)
        tier, started = self.tiers[index], time.perf_counter()
        attempts, plan = state.get("attempts", []), state.get("plan", NO_PLAN)
        allotment = tier.allot(chat.query, index, attempts)
        # the turn's requests, built once: the budget plans with them and the tier sends them
        cap = self.budget.planned_cap(tier, chat, plan, allotment)
        requests = tier.requests(chat, max_tokens=cap, index=0, allotment=allotment)
        asks = self.budget.asks(tier, requests)
        max_tokens = self.budget.affordable_cap(asks, requests[0].max_tokens)
        progress.tier_called(tier.config.name, tier.config.label)
        on_text = None
        if state.get("stream_tokens"):
            live = self.last_tier_live and index == len(self.tiers) - 1 and tier.streams_live(chat)
            writer(TierStart(tier.config.name, index, ", ".join(s.model for s in tier.specs), live))
            if live:
                on_text = live_text(tier.config.name, writer, answer=tier.config.answer.format == "text")
        completion, failed = None, None
        over_budget = self.budget.refusal(tier, asks) or ""
        try:
            if over_budget:
                raise CallOverBudgetError(over_budget, model=tier.config.label)
            capped = [replace(request, max_tokens=max_tokens) for request in requests]
            completion = await tier.call(capped, chat, on_text=on_text)
        except ProviderError as exc:
            failed = tier.failed_attempt(exc, started)
            over_budget = str(exc) if isinstance(exc, BudgetExceededError) else ""
        latency = time.perf_counter() - started
        usage = Usage.of([completion] if completion else [])
        return {
            "draft": Draft(index, max_tokens, latency, completion, failed, over_budget, allotment),
            "steps": [_step("generate", tier, usage, latency, "" if completion else "provider failed")],
        }

    async def verify(self, state: CascadeState, writer: StreamWriter) -> CascadeState:
        """Score the draft, let the router decide, record the attempt and what comes next."""
        draft, chat, previous = state.get("draft"), chat_of(state), state.get("attempts", [])
        assert draft is not None, "verify runs after generate"
        tier, started = self.tiers[draft.tier], time.perf_counter()
        turn_started = started - draft.latency_s  # the attempt's latency is generate's plus verify's
        usage = Usage()
        first = draft.completion
        invalid = tier.read(first, chat).invalid if first is not None else None
        if first is None:
            assert draft.failed is not None, "a draft has a completion or a failed attempt"
            record = draft.failed
        elif invalid is not None:  # breaks the requested format (JSON, tools): escalates unjudged
            record = tier.invalid_attempt(first, invalid, chat, turn_started)
        elif self._cut_short(draft, first, state):  # hit the token cap: a bigger budget may finish it
            record = tier.truncated_attempt(first, chat, turn_started, draft.max_tokens)
        else:
            samples, verdict, answer = await tier.verify(
                chat,
                first,
                tier_index=draft.tier,
                previous=list(previous),
                max_tokens=draft.max_tokens,
                before_draw=lambda drawn: self.budget.check_draw(tier, previous, drawn),
                allotment=draft.allotment,
            )
            context = DecideContext(
                query=chat.query,
                tier=tier.config,
                tier_index=draft.tier,
                n_tiers=len(self.tiers),
                verdict=verdict,
                answer=answer,
                previous=list(previous),
                tag=state.get("tag"),
                history=chat.history,
            )
            decision = self.router.decide(context)
            details = tier.answer_details(samples, answer, chat)
            record = tier.attempt(samples, verdict, answer, decision, turn_started, details)
            usage = Usage.of(samples[1:]) + verdict.usage
        if first is not None and draft.allotment is not None and (tier.budget_policy or _truncated(first)):
            trace = BudgetTrace.of(draft.allotment, draft.max_tokens, _truncated(first))
            record = record.model_copy(update={"budget": trace})
        plan = state.get("plan", NO_PLAN)
        settled = settle(
            record.decision,
            draft.tier,
            self.names,
            plan.skip,
            lambda onward: self.budget.blocks(self.tiers[onward], chat) or "",
        )
        if settled.decision != record.decision:  # an escalation that cannot happen: a stop, and why
            reason = f"{record.reason}; {settled.why}"
            record = record.model_copy(update={"decision": settled.decision, "reason": reason})
        why = draft.over_budget or settled.why
        writer(record)
        # the attempt's clock started at generate's start: verify is the rest of it, so the two
        # steps add up to the attempt's latency exactly (a failed call's attempt ends in generate)
        verify_latency = max(0.0, record.latency_s - draft.latency_s) if first is not None else 0.0
        step = _step("verify", tier, usage, verify_latency, record.decision)
        update: CascadeState = {"attempts": [record], "steps": [step], "stop_reason": why, "draft": None}
        if settled.next_tier is not None:
            update["next_tier"] = settled.next_tier
        return update

    async def decide(self, state: CascadeState) -> Branch:
        """The decision edge: accept → END, stop → END, escalate → the next tier (approval first if it asks)."""
        if state["attempts"][-1].decision == "accept":
            return "accept"
        if state.get("stop_reason"):
            return "stop"
        return "approval" if self.tiers[state["next_tier"]].config.approve else "escalate"

    async def approve(self, state: CascadeState) -> Command[Literal["generate", "__end__"]]:
        """Pause for a person's approval of the next tier; LangGraph re-runs this node on resume."""
        tier, attempts = self.tiers[state.get("next_tier", 0)], state.get("attempts", [])
        request = approval_request(tier, chat_of(state), attempts, state.get("plan", NO_PLAN), self.budget)
        approved, note = read_reply(interrupt(request.model_dump()))
        outcome = "approved" if approved else "refused"
        step = NodeStep(node="approve", tier=tier.config.name, note=f"{outcome}: {note}" if note else outcome)
        if approved:
            return Command(goto="generate", update={"steps": [step]})
        why = f"tier '{tier.config.name}' not approved" + (f": {note}" if note else "")
        return Command(goto="__end__", update={"steps": [step], "stop_reason": why})

    def _cut_short(self, draft: Draft, first: Completion, state: CascadeState) -> bool:
        """An answer that hit the token cap escalates unjudged when its tier says so
        (`on_truncation: escalate`, the default) and a tier is left to take it."""
        tier = self.tiers[draft.tier]
        if not _truncated(first) or tier.config.on_truncation != "escalate" or tier.config.is_ensemble:
            return False
        return called_from(draft.tier + 1, self.names, state.get("plan", NO_PLAN).skip) is not None


def _truncated(completion: Completion) -> bool:
    return completion.finish_reason == "length"


def live_text(tier: str, writer: StreamWriter, *, answer: bool) -> Callable[[str], None]:
    """What a live tier's pieces of text become: reasoning deltas, or with `answer` (a `text`-format
    tier, whose answer is its text stripped) answer deltas that add up to exactly that answer."""
    if answer:
        return _AnswerPieces(tier, writer)
    return lambda piece: writer(TextDelta(tier, piece, True, reasoning=True))


class _AnswerPieces:
    """Leading whitespace dropped, trailing whitespace held until more text follows it."""

    def __init__(self, tier: str, writer: StreamWriter) -> None:
        self.tier, self.writer = tier, writer
        self.held, self.started = "", False

    def __call__(self, piece: str) -> None:
        text = self.held + piece if self.started else piece.lstrip()
        body = text.rstrip()
        self.held = text[len(body) :]
        if body:
            self.started = True
            self.writer(TextDelta(self.tier, body, True))


def with_state_types(saver: BaseCheckpointSaver[Any]) -> BaseCheckpointSaver[Any]:
    """`saver` allowed to read back the cascade's state types (LangGraph warns about, and will
    block, unregistered types): a default serializer becomes one that allows exactly LangGraph's
    safe types and these; any other gets them added to its allowlist. The saver is not changed."""
    if type(saver.serde) is JsonPlusSerializer:
        clone = copy.copy(saver)
        clone.serde = JsonPlusSerializer(
            pickle_fallback=saver.serde.pickle_fallback, allowed_msgpack_modules=STATE_TYPES
        )
        return clone
    return saver.with_allowlist([(t.__module__, t.__name__) for t in STATE_TYPES])


def chat_of(state: CascadeState) -> Conversation:
    """The run's input; a graph embedding the cascade may give only `query`."""
    return state.get("conversation") or conversation_of(state["query"])


def _step(node: Literal["generate", "verify"], tier: TierRuntime, usage: Usage, latency: float, note: str) -> NodeStep:
    return NodeStep(
        node=node,
        tier=tier.config.name,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        cost_usd=usage.cost_usd,
        latency_s=latency,
        note=note,
    )
