"""A client that goes away cancels its run, and the part that ran is kept and charged.

While a request waits for a slot or its run is in progress, `until_disconnected` watches the
connection (the ASGI `http.disconnect` message). When the client leaves first, the work is
cancelled: a request still queued leaves the queue without ever starting; a running cascade
stops at once, its calls in flight are cancelled and charged their reservation (the provider may
have generated all of it, `cascade.budget.metering`). `Progress` keeps what the run did so far, so the
server can record it as a cancelled run with every token it was charged.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import TypeVar

from starlette.requests import Request

from cascade.budget.metering import Tab
from cascade.config.schema import CascadeConfig
from cascade.io.conversation import Conversation
from cascade.run.budget_plan import spent_by
from cascade.types import Attempt, CascadeResult, Usage

CANCELLED = "cancelled: the client disconnected"
_T = TypeVar("_T")


class ClientDisconnected(Exception):
    """The client closed the connection before its answer was ready."""


@dataclass
class Progress:
    """What a run has done so far: its finished attempts and the calls charged (`tab`)."""

    attempts: list[Attempt] = field(default_factory=list)
    tab: Tab | None = None
    started: bool = False


async def until_disconnected(request: Request) -> None:
    """Return once the client has gone (the request body must have been read already)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def unless_disconnected(request: Request, work: Awaitable[_T]) -> _T:
    """`work`'s result, or ClientDisconnected after cancelling it if the client leaves first."""
    task = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(until_disconnected(request))
    try:
        await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        task.cancel()
        raise
    finally:
        gone.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task
    raise ClientDisconnected()


def cancelled_result(
    chat: Conversation, progress: Progress, config: CascadeConfig, tag: str | None, *, run_id: str | None = None
) -> CascadeResult:
    """The run as far as it got: its finished attempts, plus one for the calls in flight with what
    they were charged, so the run's totals equal what its budgets were charged."""
    attempts = list(progress.attempts)
    rest = (progress.tab.spent - spent_by(attempts)) if progress.tab is not None else Usage()
    if rest != Usage() and progress.tab is not None and progress.tab.calls:
        model = progress.tab.calls[-1].model
        attempts.append(
            Attempt(
                tier=_tier_of(model, config, attempts),
                model=model,
                answer=None,
                prompt_tokens=rest.prompt_tokens,
                completion_tokens=rest.completion_tokens,
                cost_usd=rest.cost_usd,
                decision="failed",
                reason=f"{CANCELLED}; calls in flight are charged their reservation",
                error=CANCELLED,
            )
        )
    return CascadeResult(
        query=chat.query,
        answer=None,
        accepted=False,
        final_tier=None,
        attempts=attempts,
        stop_reason=CANCELLED,
        run_id=run_id or uuid.uuid4().hex,
        error=CANCELLED,
        tag=tag,
        messages=None if chat.is_single_turn else [dict(m) for m in chat.messages],
    )


def _tier_of(model: str, config: CascadeConfig, attempts: list[Attempt]) -> str:
    """The tier that was calling `model`: the first after the last finished attempt that uses it."""
    names = [t.name for t in config.tiers]
    after = names.index(attempts[-1].tier) + 1 if attempts and attempts[-1].tier in names else 0
    for tier in [*config.tiers[after:], *config.tiers[:after]]:
        if model in [spec.model for spec in tier.member_specs()]:
            return tier.name
    return model
