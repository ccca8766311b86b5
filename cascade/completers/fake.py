"""FakeCompleter: scripted answers, token counts, logprobs, failures and delays, offline.

Shipped for users' tests as much as ours (like httpx's MockTransport). A script maps a model
string to replies; a reply may match the query by regex, be used a limited number of
`times` (to fail twice, then succeed), carry logprobs, token counts, a cost, a delay, an error or
tool calls (`tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}]`).

    fake = FakeCompleter({
        "small": [FakeReply("4", match=r"2\\+2", logprobs=[-0.01]), FakeReply("?", logprobs=[-3.0])],
        "big": "Paris",
    })

At scale (replaying a log of thousands of items through the live engine), a model's script is a
table from the exact prompt (the last user message as sent: the tier's template applied to the
query; the query itself by default) to its reply, looked up in O(1); `cost_usd` on a reply
reproduces a logged cost exactly instead of tokens times prices:

    fake = FakeCompleter(by_prompt={"openai/gpt-4": {"Q1": FakeReply("B", completion_tokens=1, cost_usd=3e-4)}})
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cascade.errors import PermanentProviderError, ProviderError, TransientProviderError
from cascade.types import Completion, CompletionRequest, ToolCall

_ERRORS: dict[str, tuple[type[ProviderError], int | None, str]] = {
    "timeout": (TransientProviderError, 408, "request timed out"),
    "rate_limit": (TransientProviderError, 429, "rate limited (429)"),
    "server": (TransientProviderError, 503, "server error (503)"),
    "auth": (PermanentProviderError, 401, "authentication failed (401)"),
    "bad_request": (PermanentProviderError, 400, "bad request (400)"),
}


@dataclass
class FakeReply:
    """One scripted reply; `error` makes the call fail with that kind of provider error."""

    text: str = ""
    match: str | None = None
    logprobs: Sequence[float] | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    delay_s: float = 0.0
    error: str | None = None
    times: int | None = None
    tool_calls: Sequence[Mapping[str, Any]] | None = None
    cost_usd: float | None = None
    used: int = field(default=0, compare=False)

    _pattern: re.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.error is not None and self.error not in _ERRORS:
            raise ValueError(f"unknown fake error {self.error!r}; choose from {sorted(_ERRORS)}")
        if self.match is not None:
            try:
                self._pattern = re.compile(self.match, re.IGNORECASE)
            except re.error as exc:
                raise ValueError(f"invalid regex in FakeReply match {self.match!r}: {exc}") from None

    def calls(self, offered: Sequence[Mapping[str, Any]] | None = None) -> tuple[ToolCall, ...]:
        """The scripted tool calls; `arguments` may be a mapping or the JSON text a model would write.

        A reply with text as well makes only the calls of tools in `offered` (a request's tools), and
        answers with its text when none is offered, as a model does; a reply of calls alone makes
        them whatever is offered (to script a model calling a tool it was not given)."""
        names = None if offered is None or not self.text else {t.get("function", {}).get("name") for t in offered}
        made = []
        for i, call in enumerate(c for c in self.tool_calls or () if names is None or c["name"] in names):
            arguments = call.get("arguments", {})
            text = arguments if isinstance(arguments, str) else json.dumps(arguments)
            made.append(ToolCall(str(call["name"]), text, str(call.get("id") or f"call_fake_{i}")))
        return tuple(made)

    def applies(self, prompt: str) -> bool:
        if self.times is not None and self.used >= self.times:
            return False
        return self._pattern is None or self._pattern.search(prompt) is not None


Script = str | FakeReply | Sequence[str | FakeReply] | Callable[[CompletionRequest], str | FakeReply]
PromptTable = Mapping[str, str | FakeReply]


class FakeCompleter:
    """A Completer that answers from a script and records the latest `keep_calls` requests in `calls`.

    The record is bounded so that a fake serving a long load test (`cascade serve` on
    configs/fake.yaml) does not hold every request it ever saw in memory.
    """

    def __init__(
        self,
        script: Mapping[str, Script] | None = None,
        *,
        by_prompt: Mapping[str, PromptTable] | None = None,
        clock: Callable[[], float] = time.perf_counter,
        keep_calls: int = 10_000,
    ):
        self._script = {model: _normalise(replies) for model, replies in (script or {}).items()}
        self._tables = {model: _table(model, table) for model, table in (by_prompt or {}).items()}
        self._clock = clock
        self.calls: deque[CompletionRequest] = deque(maxlen=keep_calls)

    async def complete(self, request: CompletionRequest) -> Completion:
        started = self._clock()
        self.calls.append(request)
        reply = self._pick(request)
        if request.on_text is not None and not reply.error:
            await _write(reply, request, request.on_text)
        elif reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        if reply.error:
            kind, status, message = _ERRORS[reply.error]
            raise kind(f"{request.model}: {message} (fake)", model=request.model, status=status)
        return self._completion(request, reply, self._clock() - started)

    def count_prompt_tokens(self, request: CompletionRequest) -> int | None:
        """The prompt tokens the reply to `request` will report, known before the call (budgets
        reserve this instead of a bound); None when a scripted function decides the reply."""
        entry = self._script.get(request.model, self._script.get("*"))
        if callable(entry) and _prompt_of(request) not in self._tables.get(request.model, {}):
            return None  # calling the script function to peek could change what it answers next
        try:
            reply = self._pick(request, consume=False)
        except PermanentProviderError:
            return None
        return _prompt_tokens(request, reply)

    def _pick(self, request: CompletionRequest, *, consume: bool = True) -> FakeReply:
        prompt = _prompt_of(request)
        table = self._tables.get(request.model)
        if table is not None and prompt in table:
            return table[prompt]
        entry = self._script.get(request.model, self._script.get("*"))
        if entry is None:
            raise PermanentProviderError(
                f"{request.model}: the fake completer has no {'reply for this prompt' if table else 'script'} "
                "for this model",
                model=request.model,
                status=400 if table else 404,
            )
        if callable(entry):
            produced = entry(request)
            return FakeReply(produced) if isinstance(produced, str) else produced
        for reply in entry:
            if reply.applies(prompt):
                reply.used += consume
                return reply
        raise PermanentProviderError(
            f"{request.model}: no scripted reply left for this prompt (fake)", model=request.model, status=400
        )

    @staticmethod
    def _completion(request: CompletionRequest, reply: FakeReply, latency: float) -> Completion:
        out = _Output.of(reply, request)
        calls = reply.calls(request.tools)
        logprobs = out.logprobs if request.logprobs and reply.logprobs is not None else None
        # a script has no distribution: each token's best alternative is itself
        top = (
            tuple(((t, lp),) for t, lp in zip(out.tokens, out.logprobs, strict=True)) if request.top_logprobs else None
        )
        prompt_tokens = _prompt_tokens(request, reply)
        cost = reply.cost_usd
        if cost is None:
            cost = prompt_tokens * (request.input_price or 0.0) + out.completion_tokens * (request.output_price or 0.0)
        finish = "tool_calls" if calls else out.finish
        tokens = out.tokens if logprobs is not None else None
        return Completion(
            out.text, request.model, prompt_tokens, out.completion_tokens, cost, latency, logprobs, finish, calls,
            top_logprobs=top if logprobs is not None else None, tokens=tokens,
        )  # fmt: skip


@dataclass(frozen=True)
class _Output:
    """What a scripted reply writes under a request: its text cut at the stops and at `max_tokens`
    ("length"), the tokens (as many as the reply has logprobs) and their logprobs."""

    text: str
    completion_tokens: int
    finish: str
    tokens: tuple[str, ...] = ()
    logprobs: tuple[float, ...] = ()

    @classmethod
    def of(cls, reply: FakeReply, request: CompletionRequest) -> _Output:
        text, finish = _apply_stops(reply.text, request)
        calls = reply.calls(request.tools)
        if reply.logprobs is not None:  # one token per logprob: the scripted text in as many pieces
            tokens = _prefix(_pieces(reply.text, len(reply.logprobs)), len(text))
            logprobs = tuple(reply.logprobs)[: len(tokens)]
            count = reply.completion_tokens if reply.completion_tokens is not None else len(reply.logprobs)
            if count > request.max_tokens:
                tokens, logprobs, finish = tokens[: request.max_tokens], logprobs[: request.max_tokens], "length"
            text = "".join(tokens)
            return cls(text, min(count, request.max_tokens), finish, tokens, logprobs)
        written = text + "".join(c.name + c.arguments for c in calls)
        count = reply.completion_tokens if reply.completion_tokens is not None else approx_tokens(written)
        if count > request.max_tokens:
            text, count, finish = text[: request.max_tokens * CHARS_PER_TOKEN], request.max_tokens, "length"
        return cls(text, count, finish)


def _pieces(text: str, count: int) -> tuple[str, ...]:
    """`text` in `count` pieces of about equal length (empty ones at the end when it is short)."""
    size, extra = divmod(len(text), count)
    bounds = [i * size + min(i, extra) for i in range(count + 1)]
    return tuple(text[bounds[i] : bounds[i + 1]] for i in range(count))


def _prefix(tokens: tuple[str, ...], length: int) -> tuple[str, ...]:
    """The tokens that write the first `length` characters of their text, the last one cut to fit."""
    kept: list[str] = []
    for token in tokens:
        written = sum(map(len, kept))
        if written >= length:
            break
        kept.append(token[: length - written])
    return tuple(kept)


def _prompt_of(request: CompletionRequest) -> str:
    return (request.messages[-1].get("content") or "") if request.messages else ""


def _prompt_tokens(request: CompletionRequest, reply: FakeReply) -> int:
    if reply.prompt_tokens is not None:
        return reply.prompt_tokens
    return sum(approx_tokens(m.get("content") or "") for m in request.messages)


_PIECES = re.compile(r"\s*\S+\s*|\s+")


async def _write(reply: FakeReply, request: CompletionRequest, on_text: Callable[[str], None]) -> None:
    """Live streaming: the reply's text word by word, its `delay_s` spread over the words."""
    pieces = _PIECES.findall(_Output.of(reply, request).text)
    for piece in pieces:
        await asyncio.sleep(reply.delay_s / len(pieces))
        on_text(piece)
    if not pieces and reply.delay_s:
        await asyncio.sleep(reply.delay_s)


CHARS_PER_TOKEN = 4


def approx_tokens(text: str) -> int:
    """About four characters a token, at least one for non-empty text."""
    return math.ceil(len(text) / CHARS_PER_TOKEN) if text else 0


def _apply_stops(text: str, request: CompletionRequest) -> tuple[str, str]:
    cut = len(text)
    for stop in request.stop:
        index = text.find(stop)
        if stop and index != -1:
            cut = min(cut, index)
    if request.stop_pattern:
        match = re.search(request.stop_pattern, text)
        if match:
            cut = min(cut, match.end())
    return text[:cut], "stop"


def _normalise(script: Script) -> list[FakeReply] | Callable[[CompletionRequest], str | FakeReply]:
    if callable(script) and not isinstance(script, FakeReply):
        return script
    items = [script] if isinstance(script, (str, FakeReply)) else list(script)
    return [FakeReply(item) if isinstance(item, str) else item for item in items]


def _table(model: str, table: PromptTable) -> dict[str, FakeReply]:
    """A prompt table's replies; they answer their prompt every time, so `match` and `times` do not apply."""
    replies = {prompt: FakeReply(reply) if isinstance(reply, str) else reply for prompt, reply in table.items()}
    for prompt, reply in replies.items():
        if reply.match is not None or reply.times is not None:
            raise ValueError(f"{model}: the reply for {prompt[:40]!r} sets match or times; a table reply has neither")
    return replies
