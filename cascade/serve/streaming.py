"""`stream: true`: the run's events as server-sent events, while the cascade runs.

The policy (`Cascade.astream(tokens=True)`): the last tier's text streams as the model writes it,
since nothing can take it back; a tier that may still escalate is not shown until it is accepted,
so a client never sees text that is not the answer. The content is the same streamed or not: where
the tier's answer format reads the answer out of the model's text (a reasoning, a first line), the
text streams as `reasoning_content`, the convention of DeepSeek, vLLM and llama.cpp that chat UIs
show as the model's thinking and other clients skip. What the stream carries:

    : cascade tier=small model=fake/small live=false          SSE comments, which OpenAI clients
    : cascade tier=small decision=escalate confidence=0.22    skip: which tier is tried, and how
    : cascade tier=large model=fake/large live=true           its turn ended
    data: {"object": "chat.completion.chunk", ... "delta": {"content": "Par"}}    the answer's text
    data: {... "delta": {"reasoning_content": "Tom has"}}     or, when the tier's answer format reads
    data: {... "delta": {"content": "39"}}                    the answer out of its text, that text,
                                                              then the answer whole
    data: {... "finish_reason": "stop", "cascade": {...}}     run id, tiers, decisions
    data: {... "usage": {...}}                                with stream_options.include_usage
    data: [DONE]

The status line goes out before the answer is known, so a run that ends without one is reported
in the stream as OpenAI does, `data: {"error": {...}}` (the openai client raises it as APIError).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cascade.run.engine import Event

from cascade.serve.responses import PLAIN_REPLY, ReplyForm, cascade_info, failure_message, not_accepted, usage_of
from cascade.serve.schemas import (
    CascadeInfo,
    ChatCompletionChunk,
    ChunkChoice,
    Delta,
    ErrorBody,
    ErrorDetail,
    Usage,
)
from cascade.types import Attempt, CascadeResult, TextDelta, TierStart


class SseStream:
    """Formats one response's events; every chunk shares the stream's id."""

    def __init__(self, model: str, *, include_usage: bool, form: ReplyForm = PLAIN_REPLY) -> None:
        self.run_id = uuid.uuid4().hex  # the run's, as a plain response's id is chatcmpl-<run id>
        self.id = f"chatcmpl-{self.run_id}"
        self.created = int(time.time())
        self.model = model
        self.include_usage = include_usage
        self.form = form
        self.text_from: str | None = None  # the tier whose text has been sent
        self.held = ""  # with logprobs, the answer is sent whole at the end, with them
        self.opened = False

    @staticmethod
    def comment(text: str) -> str:
        return f": {text}\n\n"

    def event(self, event: TierStart | TextDelta | Attempt) -> list[str]:
        if isinstance(event, TierStart):
            return [self.comment(f"cascade tier={event.tier} model={event.model} live={str(event.live).lower()}")]
        if isinstance(event, Attempt):
            confidence = f" confidence={event.confidence:.3f}" if event.confidence is not None else ""
            return [self.comment(f"cascade tier={event.tier} decision={event.decision}{confidence}")]
        if event.reasoning:
            return [*self.opening(), self.chunk([ChunkChoice(delta=Delta(reasoning_content=event.text))])]
        if self.text_from is not None and self.text_from != event.tier:
            # the live tier failed after part of its text; another tier's answer cannot be appended to it
            return [self.error(f"tier '{self.text_from}' failed while streaming its answer", "stream_broken")]
        chunks = self.opening()
        self.text_from = event.tier
        if self.form.logprobs:
            self.held += event.text
            return chunks
        return [*chunks, self.chunk([ChunkChoice(delta=Delta(content=event.text))])]

    def opening(self) -> list[str]:
        """The first chunk (the role, content null) if it has not been sent."""
        if self.opened:
            return []
        self.opened = True
        return [self.chunk([ChunkChoice(delta=Delta(role="assistant"))])]

    def end(self, result: CascadeResult) -> list[str]:
        """The closing chunks: tool calls, the finish reason with the cascade's account, usage, [DONE]."""
        if result.error is not None:
            code = "invalid_output" if any(a.invalid for a in result.attempts) else "no_tier_answered"
            return [self.error(failure_message(result), code, cascade_info(result)), "data: [DONE]\n\n"]
        if self.form.refuses(result):
            info = cascade_info(result, with_answer=True)
            return [self.error(not_accepted(result), "not_accepted", info), "data: [DONE]\n\n"]
        out = self.opening()
        if self.held or (self.form.logprobs and not result.tool_calls):
            logprobs = self.form.logprobs_of(result)
            out.append(self.chunk([ChunkChoice(delta=Delta(content=self.held), logprobs=logprobs)]))
        calls = self.form.calls(result)
        if "tool_calls" in calls:
            calls["tool_calls"] = [{"index": i, **call} for i, call in enumerate(calls["tool_calls"])]
        if calls:
            out.append(self.chunk([ChunkChoice(delta=Delta(**calls))]))
        finish = self.form.finish_reason(result)
        out.append(self.chunk([ChunkChoice(delta=Delta(), finish_reason=finish)], info=cascade_info(result)))
        if self.include_usage:
            out.append(self.chunk([], usage=usage_of(result)))
        return [*out, "data: [DONE]\n\n"]

    def chunk(self, choices: list[ChunkChoice], usage: Usage | None = None, info: CascadeInfo | None = None) -> str:
        """One chunk as OpenAI writes it: `finish_reason` and `logprobs` always there (null until
        known), the delta with only what it carries (the first one's `content` is null)."""
        body = ChatCompletionChunk(
            id=self.id, created=self.created, model=self.model, choices=choices, usage=usage, cascade=info
        ).model_dump(mode="json", exclude_none=True)
        for raw, choice in zip(body["choices"], choices, strict=True):
            raw["delta"] = choice.delta.model_dump(mode="json", exclude_none=True)
            if choice.delta.role is not None:
                raw["delta"].setdefault("content", None)
            raw["finish_reason"] = choice.finish_reason
            raw["logprobs"] = choice.logprobs.model_dump(mode="json") if choice.logprobs else None
        return f"data: {json.dumps(body, separators=(',', ':'), ensure_ascii=False)}\n\n"

    @staticmethod
    def error(message: str, code: str, info: CascadeInfo | None = None) -> str:
        body = ErrorBody(error=ErrorDetail(message=message, type="server_error", code=code), cascade=info)
        return f"data: {body.to_json()}\n\n"


DONE = object()
"""`next_event`'s answer once the run has ended and every event was taken."""


async def next_event(events: asyncio.Queue[Event | None], run: asyncio.Future[CascadeResult]) -> object:
    """The run's next event, DONE once it has ended, or the exception it ended with."""
    while True:
        if not events.empty():
            return events.get_nowait()
        if run.done():
            run.result()  # raises the run's own error
            return DONE
        getter: asyncio.Future[Event | None] = asyncio.ensure_future(events.get())
        try:
            waits: list[asyncio.Future[Any]] = [getter, run]
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            getter.cancel()
        if getter.done() and not getter.cancelled():
            return getter.result()


async def after_first(first: str, rest: AsyncIterator[str]) -> AsyncIterator[str]:
    """`first`, already taken from the started generator `rest`, then the others. `rest` was started
    before the response, so if the client leaves before the body is read, the loop's async-generator
    finaliser still closes it (cancelling the run, keeping what it did)."""
    yield first
    async for piece in rest:
        yield piece
