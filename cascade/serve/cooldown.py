"""Cool down a model that keeps failing, so its tier falls through at once instead of timing out.

    cascade = Cascade(config, completer=CooldownCompleter(make_completer(config)))

After `failures` transient failures of one model in a row, all within `window_s` seconds, calls
to that model raise `CoolingDownError` for `cooldown_s` seconds without reaching the provider.
The first call after the pause is a probe: if it fails too, the model cools down again at once;
a success clears the record. A cancelled call (e.g. cut off by the retrying layer's timeout)
counts as a failure. Permanent errors (auth, bad request) are not counted: they are about the
request, and are not retried anyway. State is per model string; the clock is injected.

Inside `Cascade`, this wrapper sits under the RetryingCompleter, which retries transient errors;
`CoolingDownError` is transient, so until the retry layer skips it the provider is still spared
but the retry waits are not.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from cascade.completers.wrapper import WrapperCompleter
from cascade.errors import PermanentProviderError, TransientProviderError
from cascade.protocols import Completer
from cascade.types import Completion, CompletionRequest


class CoolingDownError(PermanentProviderError):
    """The model failed too often lately; it was not called. Permanent for this call, so the
    cascade falls through to the next tier at once instead of retrying a model it refuses to call."""


@dataclass
class _ModelState:
    failures: deque[float] = field(default_factory=deque)
    until: float | None = None
    probing: bool = False


class CooldownCompleter(WrapperCompleter):
    """Wraps a completer with a per-model failure record and cooldown."""

    def __init__(
        self,
        inner: Completer,
        *,
        failures: int = 3,
        window_s: float = 60.0,
        cooldown_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        if failures < 1 or window_s <= 0 or cooldown_s <= 0:
            raise ValueError("failures must be >= 1, window_s and cooldown_s > 0")
        super().__init__(inner)
        self.failures = failures
        self.window_s = window_s
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._models: dict[str, _ModelState] = {}
        self.skipped = 0

    async def complete(self, request: CompletionRequest) -> Completion:
        state = self._models.setdefault(request.model, _ModelState())
        self._refuse_if_cooling(request.model, state)
        try:
            completion = await self.inner.complete(request)
        except (TransientProviderError, asyncio.CancelledError):
            self._failed(state)
            raise
        state.failures.clear()
        state.probing = False
        return completion

    def cooling(self, model: str) -> bool:
        state = self._models.get(model)
        return bool(state and state.until is not None and self._clock() < state.until)

    def _refuse_if_cooling(self, model: str, state: _ModelState) -> None:
        if state.until is None:
            return
        left = state.until - self._clock()
        if left > 0:
            self.skipped += 1
            raise CoolingDownError(
                f"{model}: cooling down for {left:.1f} s more after {self.failures} failures in a row",
                model=model,
                status=503,
            )
        state.until, state.probing = None, True

    def _failed(self, state: _ModelState) -> None:
        now = self._clock()
        state.failures.append(now)
        while state.failures and now - state.failures[0] > self.window_s:
            state.failures.popleft()
        if state.probing or len(state.failures) >= self.failures:
            state.until, state.probing = now + self.cooldown_s, False
            state.failures.clear()
