"""The public entry point: `Cascade.from_yaml(path).run(query)`, async core with a thin sync wrapper."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from typing import Any, TypeVar, cast

from cascade.budget import Budget
from cascade.completers.build import make_completer
from cascade.completers.retrying import RetryingCompleter
from cascade.config import CascadeConfig, load_config
from cascade.errors import UserError
from cascade.graph import CascadeGraph, CascadeState
from cascade.protocols import Completer
from cascade.registry import BuildContext
from cascade.tiers import TierRuntime
from cascade.types import Attempt, CascadeResult

_T = TypeVar("_T")


class Cascade:
    """A configured cascade: tiers, verifiers, router and budget, compiled into one workflow."""

    def __init__(
        self,
        config: CascadeConfig,
        *,
        completer: Completer | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ):
        self.config = config
        self.completer = RetryingCompleter(completer or make_completer(config.completer), config.retry, sleep=sleep)
        build = BuildContext(config)
        default_verifier = build.verifier(config.verifier, ("verifier",))
        tiers = [
            TierRuntime.build(
                tier,
                self.completer,
                build.verifier(tier.verifier, ("tiers", i, "verifier")) if tier.verifier else default_verifier,
            )
            for i, tier in enumerate(config.tiers)
        ]
        router = build.build("router", config.router, ("router",))
        pre_router = build.build("pre_router", config.pre_router, ("pre_router",)) if config.pre_router else None
        self.graph = CascadeGraph(tiers, router, pre_router, Budget(config.budget))

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str], *, completer: Completer | None = None) -> Cascade:
        return cls(load_config(path), completer=completer)

    async def arun(self, query: str, *, tag: str | None = None) -> CascadeResult:
        """Answer one query; failures are recorded in the result, never lost.

        `tag` is the caller's label for where the query comes from (an app feature, a topic, a
        customer tier): routers that learn per context (the bandit) learn per tag, and the run
        store keeps it with the run.
        """
        _check_query(query)
        state = await self.graph.compiled.ainvoke(_initial(query, tag))
        return assemble(query, cast(CascadeState, state))

    def run(self, query: str, *, tag: str | None = None) -> CascadeResult:
        return _sync(self.arun(query, tag=tag))

    async def astream(self, query: str, *, tag: str | None = None) -> AsyncIterator[Attempt | CascadeResult]:
        """Each tier's attempt as soon as its turn ends, then the result (for progress displays)."""
        _check_query(query)
        state: dict[str, Any] = {}
        async for mode, chunk in self.graph.compiled.astream(_initial(query, tag), stream_mode=["custom", "values"]):
            if mode == "custom":
                yield cast(Attempt, chunk)
            else:
                state = cast(dict[str, Any], chunk)
        yield assemble(query, cast(CascadeState, state))

    async def abatch(self, queries: Iterable[str], *, concurrency: int = 4) -> list[CascadeResult]:
        """Answer many queries, at most `concurrency` at a time, results in input order."""
        if concurrency < 1:
            raise UserError("concurrency must be at least 1")
        gate = asyncio.Semaphore(concurrency)

        async def one(query: str) -> CascadeResult:
            async with gate:
                return await self.arun(query)

        return list(await asyncio.gather(*(one(q) for q in queries)))

    def batch(self, queries: Iterable[str], *, concurrency: int = 4) -> list[CascadeResult]:
        return _sync(self.abatch(queries, concurrency=concurrency))


def assemble(query: str, state: CascadeState) -> CascadeResult:
    """The answer is the accepted attempt's; failing that, the strongest tier's that answered."""
    attempts: list[Attempt] = state.get("attempts", [])
    plan = state.get("plan")
    accepted = next((a for a in attempts if a.decision == "accept"), None)
    answered = accepted or next((a for a in reversed(attempts) if a.answer is not None), None)
    error = None
    if answered is None:
        failed = [a for a in attempts if a.decision == "failed"]
        error = "every tier failed" if failed and len(failed) == len(attempts) else "no tier gave a usable answer"
        if not attempts:
            error = state.get("stop_reason") or "no tier was called"
    stop_reason = "accepted" if accepted else (state.get("stop_reason") or "")
    return CascadeResult(
        query=query,
        answer=answered.answer if answered else None,
        accepted=accepted is not None,
        final_tier=answered.tier if answered else None,
        attempts=attempts,
        route_reason=plan.reason if plan else "",
        stop_reason=stop_reason,
        run_id=uuid.uuid4().hex,
        error=error,
        tag=state.get("tag"),
    )


def _initial(query: str, tag: str | None) -> CascadeState:
    if tag is not None and (not isinstance(tag, str) or not tag.strip()):
        raise UserError("tag must be a non-empty string (or None)")
    return {"query": query, "attempts": [], "tag": tag}


def _check_query(query: object) -> None:
    if not isinstance(query, str) or not query.strip():
        raise UserError("query must be a non-empty string")


def _sync(coro: Coroutine[Any, Any, _T]) -> _T:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    coro.close()
    raise UserError("called the sync API inside a running event loop; use `await cascade.arun(...)` instead")
