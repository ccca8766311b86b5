"""The public entry point: `Cascade.from_yaml(path).run(query)`, async core with a thin sync wrapper."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from typing import Any, TypedDict, TypeVar, Unpack, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command, Durability, Interrupt, StreamMode

from cascade.audit.auditor import Auditor, StoreSink
from cascade.audit.guard import GuardedRouter
from cascade.budget.metering import MeteredCompleter, run_ledger
from cascade.completers.retrying import RetryingCompleter
from cascade.completers.wrapper import param_problem
from cascade.config.schema import CascadeConfig, TierConfig, load_config
from cascade.config.variants import building, variant_configs, variant_for
from cascade.errors import ToolsUnsupportedError, UnsupportedParamError, UserError
from cascade.io.conversation import Conversation, conversation_of
from cascade.io.structured import OutputSpec
from cascade.learning.online import OnlineLearner, learners_of
from cascade.protocols import BudgetPolicy, Completer
from cascade.registry import BuildContext
from cascade.run.budget_plan import Budget, spent_by
from cascade.run.graph import CascadeGraph, CascadeState, chat_of
from cascade.run.telemetry import RunSpan, run_span
from cascade.run.tier_verifiers import tier_verifiers, verifier_spec
from cascade.run.tiers import TierRuntime
from cascade.store.access import StoreAccess
from cascade.types import ApprovalRequest, Attempt, CascadeResult, TextDelta, TierStart, answering_attempt

_T = TypeVar("_T")
Query = str | Sequence[Mapping[str, Any]]
"""A question, or a conversation as OpenAI-style messages (system, user, assistant, tool)."""


Event = TierStart | TextDelta | Attempt | CascadeResult
"""What `Cascade.astream` yields: attempts and the result; with `tokens=True`, tier starts and text too."""


class OutputOptions(TypedDict, total=False):
    """OpenAI's request fields for the form of the answer and its limits (see `cascade.io.structured`)."""

    response_format: Mapping[str, Any] | None
    tools: Sequence[Mapping[str, Any]] | None
    tool_choice: str | Mapping[str, Any] | None
    max_tokens: int | None
    stop: str | Sequence[str] | None
    logprobs: bool | None
    top_logprobs: int | None


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
        checkpointer: BaseCheckpointSaver[Any] | None = None,
        arm: tuple[str, str] | None = None,
    ):
        """`learning_store`: the store (path or DSN) learning routers learn from unless their config
        names one, normally the store runs are recorded in; `learn_on_build=False` only loads their
        saved state (a background learner, `cascade serve`, takes it from there). `checkpointer`: a
        LangGraph saver that keeps each run's state after every node, so runs resume (`aresume`).

        A config with an `experiment:` block builds one cascade per variant (`cascade.config.variants`);
        this object is the first variant and hands each run to the variant its unit is assigned to
        (a checkpointed run resumes on its variant: `cascade.variants[result.variant].aresume`).
        `arm` = (experiment, variant) is how the variants themselves are built.
        """
        self.config = config
        self.arm_name = arm
        self.variants: dict[str, Cascade] = {}
        if config.experiment is not None:
            experiment, configs = config.experiment.name, variant_configs(config)
            first = next(iter(configs))
            self.arm_name, config = (experiment, first), configs[first]
            options: dict[str, Any] = {"completer": completer, "sleep": sleep, "learning_store": learning_store}
            options.update(learn_on_build=learn_on_build, checkpointer=checkpointer)
            self.variants = {
                name: self if name == first else Cascade(own, arm=(experiment, name), **options)
                for name, own in configs.items()
            }
        self.runtime_config = config  # what this object's own workflow runs: in an experiment, its first variant
        with building(self.arm_name[1] if self.arm_name else None):
            variant = self.arm_name[1] if self.arm_name else None
            stores = StoreAccess(learning_store)
            build = BuildContext(config, variant=variant, stores=stores, learn_on_build=learn_on_build)
            self.meter = MeteredCompleter(completer or build.completer(config.completer))  # budgets, per call
            self.completer = RetryingCompleter(self.meter, config.retry, sleep=sleep)
            verifiers = tier_verifiers(config, build)
            tiers = [
                TierRuntime.build(
                    tier, self.completer, verifier, verifier_spec(config, i)[0].type, budget_policy(build, tier, i)
                )
                for i, (tier, verifier) in enumerate(zip(config.tiers, verifiers, strict=True))
            ]
            self.router = build.router(config.router)
            self.pre_router = build.pre_router(config.pre_router) if config.pre_router else None
            self.budget = Budget(config.budget, self.meter)
            self.auditor = _auditor(config, tiers, variant, learning_store)
            decider = GuardedRouter(self.router, self.auditor.monitor) if self.auditor else self.router
            live = config.on_reject == "answer"
            self.graph = CascadeGraph(tiers, decider, self.pre_router, self.budget, last_tier_live=live)
        # Approvals pause a run, which LangGraph can only do with a checkpointer: one in memory
        # unless the caller brings their own (SQLite, Postgres) to survive a restart.
        self._own_saver = checkpointer is None and self.graph.needs_approval
        saver = InMemorySaver() if self._own_saver else checkpointer
        self._durable = self.graph.compile(checkpointer=saver) if saver is not None else None

    def learners(self) -> list[OnlineLearner]:
        """The components that learn from the store while the cascade serves (`cascade.learning.online`),
        every variant's in an experiment."""
        others = [learner for arm in self.variants.values() if arm is not self for learner in arm.learners()]
        return [*learners_of([self.router, self.pre_router]), *others]

    def close(self, timeout: float | None = None) -> int:
        """Finish the audits in flight (waiting up to `timeout`, default the config's `audit.drain_s`),
        every variant's; returns how many had to be dropped. Also done at interpreter exit."""
        auditors = [arm.auditor for arm in {id(a): a for a in [self, *self.variants.values()]}.values()]
        return sum(auditor.close(timeout) for auditor in auditors if auditor is not None)
    @property
    def runnable_configs(self) -> dict[str, CascadeConfig]:
        """The configs this cascade may run: each experiment variant's by name (their models may
        differ), or its own under ""."""
        return {name: arm.runtime_config for name, arm in self.variants.items()} or {"": self.config}

    def arm(self, *, tag: str | None = None, user: str | None = None, key: str | None = None) -> Cascade:
        """The cascade that answers a run: this one, or in an experiment the variant the run's unit
        (the `user`, the API `key` or the `tag`, as `assign_by` says) is assigned to."""
        if not self.variants or self.config.experiment is None:
            return self
        return self.variants[variant_for(self.config.experiment, user=user, key=key, tag=tag)]

    def _labelled(self, result: CascadeResult) -> CascadeResult:
        result.router = self.runtime_config.router.type
        if self.arm_name is not None:
            result.experiment, result.variant = self.arm_name
        return result

    @classmethod
    def from_yaml(
        cls,
        path: str | os.PathLike[str],
        *,
        completer: Completer | None = None,
        checkpointer: BaseCheckpointSaver[Any] | None = None,
    ) -> Cascade:
        return cls(load_config(path), completer=completer, checkpointer=checkpointer)

    async def arun(
        self,
        query: Query | Conversation,
        *,
        tag: str | None = None,
        thread_id: str | None = None,
        user: str | None = None,
        key: str | None = None,
        **output: Unpack[OutputOptions],
    ) -> CascadeResult:
        """Answer one query or conversation; failures are recorded in the result, never lost.

        `tag` is the caller's label for where the query comes from (an app feature, a topic, a
        customer tier): routers that learn per context (the bandit) learn per tag, and the run
        store keeps it with the run. `response_format`, `tools` and `tool_choice` are OpenAI's:
        answers are checked against them and a tier whose output breaks them escalates.
        `thread_id` names the run in the checkpointer (see `aresume`). `user` (the end user) and
        `key` (the caller's API key id) only matter in an experiment, whose `assign_by` may keep
        each of them on one variant.
        """
        arm = self.arm(tag=tag, user=user, key=key)
        if arm is not self:
            return await arm.arun(query, tag=tag, thread_id=thread_id, **output)
        chat = self.conversation(query, **output)
        with run_span(self.config.name, chat.output.kind, tag) as span:
            # The attempts as they end (LangGraph's custom stream, ~0.4 ms a run) only for a span.
            async for item in self._events(chat, tag, thread_id, span, live=span.recording):
                if isinstance(item, CascadeResult):
                    return item
        raise AssertionError("unreachable: the events end with the result")  # pragma: no cover

    def run(
        self,
        query: Query | Conversation,
        *,
        tag: str | None = None,
        thread_id: str | None = None,
        user: str | None = None,
        key: str | None = None,
        **output: Unpack[OutputOptions],
    ) -> CascadeResult:
        return _sync(self.arun(query, tag=tag, thread_id=thread_id, user=user, key=key, **output))

    async def aresume(
        self, thread_id: str, *, approve: bool | None = None, note: str = "", variant: str | None = None
    ) -> CascadeResult:
        """Carry on a checkpointed run: after a crash (the tiers that answered are not called
        again), or with a person's answer to the approval it waits for (`approve=True/False`).
        In an experiment, `variant` (the result's) names the variant that ran it."""
        if variant is not None and variant != (self.arm_name[1] if self.arm_name else None):
            if variant not in self.variants:
                raise UserError(f"no variant {variant!r} to resume the run on")
            return await self.variants[variant].aresume(thread_id, approve=approve, note=note)
        if self._durable is None:
            raise UserError("resuming needs a checkpointer: Cascade(config, checkpointer=...)")
        config = _thread(thread_id)
        snapshot = await self._durable.aget_state(config)
        if not snapshot.values:
            raise UserError(f"no checkpointed run has thread_id {thread_id!r}")
        waiting = _waiting(snapshot.interrupts)
        if waiting is not None and approve is None:
            raise UserError(f"run {thread_id!r} waits for approval of tier '{waiting.tier}': pass approve=True/False")
        if waiting is None and approve is not None:
            raise UserError(f"run {thread_id!r} is not waiting for an approval")
        spent = spent_by(cast(CascadeState, snapshot.values).get("attempts", []))
        with run_ledger(self.budget.query_account(spent)):  # the query's budget counts what it spent before
            if waiting is not None:
                resume: Command[Any] = Command(resume={"approve": approve, "note": note})
                await self._durable.ainvoke(resume, config, durability="sync")
            elif snapshot.next:
                await self._durable.ainvoke(None, config, durability="sync")
        return await self._finish(thread_id)

    def resume(
        self, thread_id: str, *, approve: bool | None = None, note: str = "", variant: str | None = None
    ) -> CascadeResult:
        return _sync(self.aresume(thread_id, approve=approve, note=note, variant=variant))

    async def arefuse_pending(self, result: CascadeResult, note: str) -> CascadeResult:
        """For a caller with no one to ask (`cascade serve`, `cascade run` without a terminal): a
        run paused for an approval is refused, so it ends with the best answer so far and leaves
        no checkpoint waiting."""
        if result.awaiting_approval is None or result.thread_id is None:
            return result
        return await self.aresume(result.thread_id, approve=False, note=note, variant=result.variant)

    async def astream(
        self,
        query: Query | Conversation,
        *,
        tag: str | None = None,
        thread_id: str | None = None,
        user: str | None = None,
        key: str | None = None,
        tokens: bool = False,
        run_id: str | None = None,
        **output: Unpack[OutputOptions],
    ) -> AsyncIterator[Event]:
        """Each tier's attempt as soon as its turn ends, then the result (for progress displays).

        With `tokens=True` the stream also says which tier is tried (`TierStart`) and carries the
        answer's text (`TextDelta`): the last tier's as it is written (its answer is final, so
        nothing shown is taken back), any other tier's whole once it is accepted. JSON and tool
        calls are never live: they are checked whole first. The answer deltas add up to the
        result's `answer`; a live tier whose answer format reads the answer out of its text
        (`final`, `first_line`, ...) streams that text as `reasoning` deltas, then the answer whole.
        `run_id` names the run before it ends (a server's stream carries it from its first chunk).
        """
        arm = self.arm(tag=tag, user=user, key=key)
        if arm is not self:
            async for item in arm.astream(query, tag=tag, thread_id=thread_id, tokens=tokens, run_id=run_id, **output):
                yield item
            return
        chat = self.conversation(query, **output)
        with run_span(self.config.name, chat.output.kind, tag, current=False) as span:
            async for item in self._events(chat, tag, thread_id, span, live=True, tokens=tokens, run_id=run_id):
                yield item

    async def _events(
        self,
        chat: Conversation,
        tag: str | None,
        thread_id: str | None,
        span: RunSpan,
        *,
        live: bool,
        tokens: bool = False,
        run_id: str | None = None,
    ) -> AsyncIterator[Event]:
        """The workflow's events as they happen (attempts when `live`, tier starts and text when
        `tokens`), then the result; each attempt recorded in the run's span."""
        start = self.graph.input(chat, tag, stream_tokens=tokens)
        if self._durable is None:
            _no_thread(thread_id)
        thread = thread_id or uuid.uuid4().hex
        graph, config = (self._durable, _thread(thread)) if self._durable else (self.graph.compiled, None)
        durability: Durability | None = "sync" if self._durable is not None else None
        state: dict[str, Any] = {}
        count, streamed = 0, set()
        modes: list[StreamMode] = ["custom", "values"] if live or tokens else ["values"]
        with run_ledger(self.budget.query_account()):  # every model call of the run reserves here first
            async for mode, chunk in graph.astream(start, config, stream_mode=modes, durability=durability):
                if mode == "values":
                    state = cast(dict[str, Any], chunk)
                    continue
                if isinstance(chunk, Attempt):
                    span.attempt(chunk, count)
                    count += 1
                elif isinstance(chunk, TextDelta) and not chunk.reasoning:
                    streamed.add(chunk.tier)
                yield cast(Event, chunk)
        if self._durable is not None:
            result = await self._finish(thread)
        else:
            result = self._labelled(assemble(chat, cast(CascadeState, state)))
        if run_id is not None:
            result = result.model_copy(update={"run_id": run_id})
        if self.auditor is not None:
            result = self.auditor.after_run(result, chat)
        span.finish(result)
        if tokens and result.answer is not None and not result.tool_calls and result.final_tier not in streamed:
            yield TextDelta(result.final_tier or "", result.answer, False)
        yield result

    async def _finish(self, thread: str) -> CascadeResult:
        """The result of a checkpointed run as it stands (finished, or waiting for an approval)."""
        assert self._durable is not None
        snapshot = await self._durable.aget_state(_thread(thread))
        state = cast(CascadeState, snapshot.values)
        chat = chat_of(state)
        waiting = _waiting(snapshot.interrupts)
        if waiting is None and self._own_saver:
            await self._durable.checkpointer.adelete_thread(thread)  # type: ignore[union-attr]
            return self._labelled(assemble(chat, state))
        return self._labelled(assemble(chat, state, thread_id=thread, waiting=waiting))

    def conversation(
        self,
        query: Query | Conversation,
        **output: Unpack[OutputOptions],
    ) -> Conversation:
        """The checked input of a run; UserError for malformed messages or schemas, and
        ToolsUnsupportedError when tools are asked of a tier whose provider cannot take them."""
        if isinstance(query, Conversation):
            return query
        spec = OutputSpec.of(
            output.get("response_format"),
            output.get("tools"),
            output.get("tool_choice"),
            max_tokens=output.get("max_tokens"),
            stop=output.get("stop"),
            logprobs=output.get("logprobs"),
            top_logprobs=output.get("top_logprobs"),
        )
        chat = conversation_of(query, spec)
        if spec.may_call_tools:
            self._check_param("tools", ToolsUnsupportedError)
        if spec.logprobs is not None:
            self._check_param("logprobs", lambda why: UnsupportedParamError(why, param="logprobs"))
        return chat

    def _check_param(self, param: str, error: Callable[[str], UnsupportedParamError]) -> None:
        """Refuse up front what a tier's provider would silently drop (litellm's table says which)."""
        problems = [
            f"tier {tier.name!r}: {problem}"
            for tier in self.config.tiers
            for spec in tier.member_specs()
            if (problem := param_problem(self.completer, spec.model, spec.resolved_api_base(), param))
        ]
        if problems:
            raise error(f"this cascade cannot take {param}: " + "; ".join(problems))

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


def _auditor(
    config: CascadeConfig, tiers: Sequence[TierRuntime], variant: str | None, store: str | None
) -> Auditor | None:
    """The cascade's audits under `audit:`; pairs go to the cascade's store when it has one."""
    if config.audit is None:
        return None
    sink = StoreSink(store) if store is not None else None
    return Auditor(config.audit, tiers[-1], len(tiers) - 1, config_name=config.name, variant=variant, sink=sink)


def budget_policy(build: BuildContext, tier: TierConfig, index: int) -> BudgetPolicy | None:
    """The tier's budget policy, built from its `budget_policy:` spec (None: the tier's `max_tokens`)."""
    if tier.budget_policy is None:
        return None
    return build.budget_policy(tier.budget_policy, ("tiers", index, "budget_policy"))


def assemble(
    chat: Conversation,
    state: CascadeState,
    *,
    thread_id: str | None = None,
    waiting: ApprovalRequest | None = None,
) -> CascadeResult:
    """The answer is the accepted attempt's; failing that, the strongest tier's that answered.
    A run paused for an approval (`waiting`) has no error: it has not ended."""
    attempts: list[Attempt] = state.get("attempts", [])
    plan = state.get("plan")
    answered = answering_attempt(attempts)
    accepted = answered is not None and answered.decision == "accept"
    stop_reason = "accepted" if accepted else (state.get("stop_reason") or "")
    if waiting is not None:
        stop_reason = f"awaiting approval of tier '{waiting.tier}'"
    return CascadeResult(
        query=chat.query,
        answer=answered.answer if answered else None,
        accepted=accepted,
        final_tier=answered.tier if answered else None,
        attempts=attempts,
        route_reason=plan.reason if plan else "",
        stop_reason=stop_reason,
        run_id=uuid.uuid4().hex,
        error=None if answered or waiting else _why_no_answer(attempts, state, chat),
        tag=state.get("tag"),
        messages=None if chat.is_single_turn else [dict(m) for m in chat.messages],
        tool_calls=answered.tool_calls if answered else None,
        steps=state.get("steps", []),
        thread_id=thread_id,
        awaiting_approval=waiting,
    )


def _why_no_answer(attempts: list[Attempt], state: CascadeState, chat: Conversation) -> str:
    if not attempts:
        return state.get("stop_reason") or "no tier was called"
    if all(a.decision == "failed" for a in attempts):
        return "every tier failed"
    if any(a.invalid for a in attempts):
        return f"no tier produced valid {chat.output.kind} output"
    return "no tier gave a usable answer"


def _thread(thread_id: str) -> RunnableConfig:
    return {"configurable": {"thread_id": thread_id}}


def _no_thread(thread_id: str | None) -> None:
    if thread_id is not None:
        raise UserError("thread_id needs a checkpointer: Cascade(config, checkpointer=...)")


def _waiting(interrupts: Sequence[Interrupt]) -> ApprovalRequest | None:
    """The approval a checkpointed run is paused on, if any."""
    return ApprovalRequest.model_validate(interrupts[0].value) if interrupts else None


def _sync(coro: Coroutine[Any, Any, _T]) -> _T:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    coro.close()
    raise UserError("called the sync API inside a running event loop; use `await cascade.arun(...)` instead")
