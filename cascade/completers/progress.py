"""What model calls are doing while they run, for progress displays: the tier called, tokens so far.

A reasoning tier on a local model may write for minutes; `cascade run` and `cascade eval` printed
nothing meanwhile. A display opens `watching(meter)`; the workflow says which tier it calls
(`tier_called`), every call through `RetryingCompleter` reports its start and its usage, and a local
model's text pieces are counted as they are written (about one per token). The meter lives in a
ContextVar: the concurrent runs of an evaluation all report to the display that started them, and
code without a display pays one lookup per call.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from cascade.types import Completion


@dataclass
class Call:
    """One model call in flight: its model, when it started, the text pieces written so far."""

    model: str
    started: float = field(default_factory=time.monotonic)
    pieces: int = 0


@dataclass
class Meter:
    """The state a display shows; updated from the event loop and (pieces) from inference threads."""

    tier: str = ""
    model: str = ""
    tier_started: float = field(default_factory=time.monotonic)
    finished_tokens: int = 0
    finished_calls: int = 0
    in_flight: list[Call] = field(default_factory=list)

    @property
    def tokens(self) -> int:
        """Tokens of finished calls, plus the pieces written so far by calls in flight."""
        return self.finished_tokens + sum(call.pieces for call in list(self.in_flight))

    def describe(self) -> str:
        """'qwen2.5-1.5b-think (local/qwen2.5-1.5b) · 212 tokens · 31 s' for a status line."""
        if not self.tier and not self.in_flight:
            return f"{self.tokens:,} tokens"
        model = self.model or (self.in_flight[-1].model if self.in_flight else "")
        where = f"{self.tier} ({model})" if self.tier else model
        return f"{where} · {self.tokens:,} tokens · {time.monotonic() - self.tier_started:.0f} s"


_METER: ContextVar[Meter | None] = ContextVar("cascade_progress_meter", default=None)
_CALL: ContextVar[Call | None] = ContextVar("cascade_progress_call", default=None)


@contextmanager
def watching(meter: Meter) -> Iterator[Meter]:
    """Report every model call made in this context (and the tasks it starts) to `meter`."""
    token = _METER.set(meter)
    try:
        yield meter
    finally:
        _METER.reset(token)


def tier_called(tier: str, model: str) -> None:
    """The workflow's turn at `tier` begins."""
    meter = _METER.get()
    if meter is not None:
        meter.tier, meter.model, meter.tier_started = tier, model, time.monotonic()


@contextmanager
def call(model: str) -> Iterator[Call]:
    """One model call, in flight while the block runs (shown when a display watches); its pieces say
    how far it got, e.g. when it times out. `finished` adds its usage."""
    meter, current = _METER.get(), Call(model)
    if meter is not None:
        meter.in_flight.append(current)
    token = _CALL.set(current)
    try:
        yield current
    finally:
        _CALL.reset(token)
        if meter is not None:
            meter.in_flight.remove(current)


def finished(completion: Completion) -> None:
    meter = _METER.get()
    if meter is not None:
        meter.finished_tokens += completion.prompt_tokens + completion.completion_tokens
        meter.finished_calls += 1


def current_call() -> Call | None:
    """The call in flight in this context, whose pieces a completer counts (None outside `call`)."""
    return _CALL.get()
