"""`stream: true`: the run's events as server-sent events, while the cascade runs.

The policy (`Cascade.astream(tokens=True)`): the last tier's text streams as the model writes it,
since nothing can take it back; a tier that may still escalate is not shown until it is accepted,
so a client never sees text that is not the answer. What the stream carries:

    : cascade tier=small model=fake/small live=false          SSE comments, which OpenAI clients
    : cascade tier=small decision=escalate confidence=0.22    skip: which tier is tried, and how
    : cascade tier=large model=fake/large live=true           its turn ended
    data: {"object": "chat.completion.chunk", ... "delta": {"content": "Par"}}    the answer's text
    data: {... "finish_reason": "stop", "cascade": {...}}     run id, tiers, decisions
    data: {... "usage": {...}}                                with stream_options.include_usage
    data: [DONE]

The status line goes out before the answer is known, so a run that ends without one is reported
in the stream as OpenAI does, `data: {"error": {...}}` (the openai client raises it as APIError).
"""

from __future__ import annotations

import time
import uuid

from cascade.serve.responses import cascade_info, failure_message, usage_of
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

    def __init__(self, model: str, *, include_usage: bool) -> None:
        self.run_id = uuid.uuid4().hex  # the run's, as a plain response's id is chatcmpl-<run id>
        self.id = f"chatcmpl-{self.run_id}"
        self.created = int(time.time())
        self.model = model
        self.include_usage = include_usage
        self.text_from: str | None = None  # the tier whose text has been sent

    @staticmethod
    def comment(text: str) -> str:
        return f": {text}\n\n"

    def event(self, event: TierStart | TextDelta | Attempt) -> list[str]:
        if isinstance(event, TierStart):
            return [self.comment(f"cascade tier={event.tier} model={event.model} live={str(event.live).lower()}")]
        if isinstance(event, Attempt):
            confidence = f" confidence={event.confidence:.3f}" if event.confidence is not None else ""
            return [self.comment(f"cascade tier={event.tier} decision={event.decision}{confidence}")]
        if self.text_from is not None and self.text_from != event.tier:
            # the live tier failed after part of its text; another tier's answer cannot be appended to it
            return [self.error(f"tier '{self.text_from}' failed while streaming its answer", "stream_broken")]
        chunks = [] if self.text_from is not None else [self.chunk([ChunkChoice(delta=Delta(role="assistant"))])]
        self.text_from = event.tier
        return [*chunks, self.chunk([ChunkChoice(delta=Delta(content=event.text))])]

    def end(self, result: CascadeResult) -> list[str]:
        """The closing chunks: tool calls, the finish reason with the cascade's account, usage, [DONE]."""
        if result.error is not None:
            code = "invalid_output" if any(a.invalid for a in result.attempts) else "no_tier_answered"
            return [self.error(failure_message(result), code, cascade_info(result)), "data: [DONE]\n\n"]
        out = []
        if self.text_from is None:
            out.append(self.chunk([ChunkChoice(delta=Delta(role="assistant", content=""))]))
        if result.tool_calls:
            calls = [{"index": i, **call} for i, call in enumerate(result.tool_calls)]
            out.append(self.chunk([ChunkChoice(delta=Delta(tool_calls=calls))]))
        finish = "tool_calls" if result.tool_calls else "stop"
        out.append(self.chunk([ChunkChoice(delta=Delta(), finish_reason=finish)], info=cascade_info(result)))
        if self.include_usage:
            out.append(self.chunk([], usage=usage_of(result)))
        return [*out, "data: [DONE]\n\n"]

    def chunk(self, choices: list[ChunkChoice], usage: Usage | None = None, info: CascadeInfo | None = None) -> str:
        body = ChatCompletionChunk(
            id=self.id, created=self.created, model=self.model, choices=choices, usage=usage, cascade=info
        )
        return f"data: {body.model_dump_json(exclude_none=True)}\n\n"

    @staticmethod
    def error(message: str, code: str, info: CascadeInfo | None = None) -> str:
        body = ErrorBody(error=ErrorDetail(message=message, type="server_error", code=code), cascade=info)
        return f"data: {body.to_json()}\n\n"
