"""The public entry point: `Cascade.from_yaml(path).run(query)`, async core with a thin sync wrapper."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from typing import Any, TypedDict, TypeVar, Unpack, cast

from cascade.budget import Budget
from cascade.completers.build import make_completer
from cascade.completers.retrying import RetryingCompleter
from cascade.config import CascadeConfig, load_config
from cascade.conversation import Conversation, conversation_of
from cascade.errors import ToolsUnsupportedError, UserError
from cascade.graph import CascadeGraph, CascadeState
from cascade.learning.online import OnlineLearner, learners_of
from cascade.protocols import Completer, ToolAwareCompleter
from cascade.registry import BuildContext
from cascade.structured import OutputSpec
from cascade.tier_verifiers import tier_verifiers
from cascade.tiers import TierRuntime
from cascade.types import Attempt, CascadeResult

_T = TypeVar("_T")
Query = str | Sequence[Mapping[str, Any]]
"""A question, or a conversation as OpenAI-style messages (system, user, assistant, tool)."""


class OutputOptions(TypedDict, total=False):
    """OpenAI's request fields for the form of the answer (see `cascade.structured`)."""

    response_format: Mapping[str, Any] | None
    tools: Sequence[Mapping[str, Any]] | None
    tool_choice: str | Mapping[str, Any] | None


class Cascade:
    """A configured cascade: tiers, verifiers, router and budget, compiled into one workflow."""

    def __init__(
        self,
        config: CascadeConfig,
        *,
        completer: Completer | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        learning_store: str | None = None,
        learn_on_build: bool = True,
    ):
        """`learning_store`: the store (path or DSN) learning routers learn from unless their config
        names one, normally the store runs are recorded in; `learn_on_build=False` only loads their
        saved state (a background learner, `cascade serve`, takes it from there)."""
        self.config = config
        self.completer = RetryingCompleter(completer or make_completer(config.completer), config.retry, sleep=sleep)
        build = BuildContext(config, store=learning_store, learn_on_build=learn_on_build)
        verifiers = tier_verifiers(config, build)
        tiers = [TierRuntime.build(t, self.completer, v) for t, v in zip(config.tiers, verifiers, strict=True)]
        self.router = build.build("router", config.router, ("router",))
        self.pre_router = build.build("pre_router", config.pre_router, ("pre_router",)) if config.pre_router else None
        self.graph = CascadeGraph(tiers, self.router, self.pre_router, Budget(config.budget))

    def learners(self) -> list[OnlineLearner]:
        """The components that learn from the store while the cascade serves (`cascade.learning.online`)."""
        return learners_of([self.router, self.pre_router])

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str], *, completer: Completer | None = None) -> Cascade:
        return cls(load_config(path), completer=completer)

    async def arun(
        self,
        query: Query | Conversation,
        *,
        tag: str | None = None,
        **output: Unpack[OutputOptions],
    ) -> CascadeResult:
        """Answer one query or conversation; failures are recorded in the result, never lost.

        `tag` is the caller's label for where the query comes from (an app feature, a topic, a
        customer tier): routers that learn per context (the bandit) learn per tag, and the run
        store keeps it with the run. `response_format`, `tools` and `tool_choice` are OpenAI's:
        answers are checked against them and a tier whose output breaks them escalates.
        """
        chat = self.conversation(query, **output)
        state = await self.graph.compiled.ainvoke(_initial(chat, tag))
        return assemble(chat, cast(CascadeState, state))

    def run(
        self,
        query: Query | Conversation,
        *,
        tag: str | None = None,
        **output: Unpack[OutputOptions],
    ) -> CascadeResult:
        return _sync(self.arun(query, tag=tag, **output))

    async def astream(
        self,
        query: Query | Conversation,
        *,
        tag: str | None = None,
        **output: Unpack[OutputOptions],
    ) -> AsyncIterator[Attempt | CascadeResult]:
        """Each tier's attempt as soon as its turn ends, then the result (for progress displays)."""
        chat = self.conversation(query, **output)
        state: dict[str, Any] = {}
        async for mode, chunk in self.graph.compiled.astream(_initial(chat, tag), stream_mode=["custom", "values"]):
            if mode == "custom":
                yield cast(Attempt, chunk)
            else:
                state = cast(dict[str, Any], chunk)
        yield assemble(chat, cast(CascadeState, state))

    def conversation(
        self,
        query: Query | Conversation,
        **output: Unpack[OutputOptions],
    ) -> Conversation:
        """The checked input of a run; UserError for malformed messages or schemas, and
        ToolsUnsupportedError when tools are asked of a tier whose provider cannot take them."""
        if isinstance(query, Conversation):
            return query
        spec = OutputSpec.of(output.get("response_format"), output.get("tools"), output.get("tool_choice"))
        chat = conversation_of(query, spec)
        if spec.may_call_tools:
            self._check_tools()
        return chat

    def _check_tools(self) -> None:
        inner = getattr(self.completer, "inner", self.completer)
        if not isinstance(inner, ToolAwareCompleter):
            return
        problems = [
            f"tier {tier.name!r}: {problem}"
            for tier in self.config.tiers
            for spec in tier.member_specs()
            if (problem := inner.tools_problem(spec.model, spec.resolved_api_base()))
        ]
        if problems:
            raise ToolsUnsupportedError("this cascade cannot call tools: " + "; ".join(problems))

    async def abatch(self, queries: Iterable[Query | Conversation], *, concurrency: int = 4) -> list[CascadeResult]:
        """Answer many queries (or conversations), at most `concurrency` at a time, results in input order."""
        if concurrency < 1:
            raise UserError("concurrency must be at least 1")
        gate = asyncio.Semaphore(concurrency)

        async def one(query: Query | Conversation) -> CascadeResult:
            async with gate:
                return await self.arun(query)

        return list(await asyncio.gather(*(one(q) for q in queries)))

    def batch(self, queries: Iterable[Query | Conversation], *, concurrency: int = 4) -> list[CascadeResult]:
        return _sync(self.abatch(queries, concurrency=concurrency))


def assemble(query: str | Conversation, state: CascadeState) -> CascadeResult:
    """The answer is the accepted attempt's; failing that, the strongest tier's that answered."""
    chat = conversation_of(query) if isinstance(query, str) else query
    attempts: list[Attempt] = state.get("attempts", [])
    plan = state.get("plan")
    accepted = next((a for a in attempts if a.decision == "accept"), None)
    answered = accepted or next((a for a in reversed(attempts) if a.answer is not None), None)
    stop_reason = "accepted" if accepted else (state.get("stop_reason") or "")
    return CascadeResult(
        query=chat.query,
        answer=answered.answer if answered else None,
        accepted=accepted is not None,
        final_tier=answered.tier if answered else None,
        attempts=attempts,
        route_reason=plan.reason if plan else "",
        stop_reason=stop_reason,
        run_id=uuid.uuid4().hex,
        error=None if answered else _why_no_answer(attempts, state, chat),
        tag=state.get("tag"),
        messages=None if chat.is_single_turn else [dict(m) for m in chat.messages],
        tool_calls=answered.tool_calls if answered else None,
    )


def _why_no_answer(attempts: list[Attempt], state: CascadeState, chat: Conversation) -> str:
    if not attempts:
        return state.get("stop_reason") or "no tier was called"
    if all(a.decision == "failed" for a in attempts):
        return "every tier failed"
    if any(a.invalid for a in attempts):
        return f"no tier produced valid {chat.output.kind} output"
    return "no tier gave a usable answer"


def _initial(chat: Conversation, tag: str | None) -> CascadeState:
    if tag is not None and (not isinstance(tag, str) or not tag.strip()):
        raise UserError("tag must be a non-empty string (or None)")
    return {"query": chat.query, "conversation": chat, "attempts": [], "tag": tag}


def _sync(coro: Coroutine[Any, Any, _T]) -> _T:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    coro.close()
    raise UserError("called the sync API inside a running event loop; use `await cascade.arun(...)` instead")
