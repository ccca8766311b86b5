"""Retries and timeouts around any completer, with tenacity.

Only transient failures (timeouts, 429, 5xx) are retried; permanent ones (auth, bad request)
surface at once so the cascade can fall through to the next tier without wasting time.
A local model's timeout is permanent too: the same machine would be as slow again, and a retry
doubled the wait ("no answer within 120 s" after 240 s). A failure after retries says how many
tries it took and how long in all, so the attempt's latency and its error agree. Every call
reports to a progress display when one watches (`cascade.completers.progress`).
The sleep function is injected so tests run without waiting.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace

from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from cascade.completers import progress
from cascade.completers.wrapper import WrapperCompleter
from cascade.config.schema import RetryConfig
from cascade.errors import PermanentProviderError, TransientProviderError
from cascade.protocols import Completer
from cascade.types import Completion, CompletionRequest


class RetryingCompleter(WrapperCompleter):
    """Wraps a completer: per-call timeout, then tenacity retries on TransientProviderError."""

    def __init__(
        self,
        inner: Completer,
        policy: RetryConfig,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ):
        super().__init__(inner)
        self.policy = policy
        self._sleep = sleep
        self.retries = 0

    async def complete(self, request: CompletionRequest) -> Completion:
        """A call that already streamed text to its reader is not retried: the reader would get it twice."""
        written = False
        if request.on_text is not None:
            write = request.on_text

            def on_text(piece: str) -> None:
                nonlocal written
                written = True
                write(piece)

            request = replace(request, on_text=on_text)
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.policy.attempts),
            wait=wait_random_exponential(multiplier=self.policy.initial_wait_s, max=self.policy.max_wait_s),
            retry=retry_if_exception(lambda exc: isinstance(exc, TransientProviderError) and not written),
            sleep=self._sleep,
            reraise=True,
            before_sleep=self._count,
        )
        started, tries = time.monotonic(), 0
        try:
            async for attempt in retrying:
                with attempt:
                    tries += 1
                    return await self._timed(request)
        except TransientProviderError as exc:
            if tries < 2:
                raise
            spent = f"{exc} ({tries} tries, {time.monotonic() - started:.1f} s in all)"
            raise TransientProviderError(spent, model=exc.model, status=exc.status) from exc
        raise AssertionError("unreachable: tenacity reraises the last error")  # pragma: no cover

    async def _timed(self, request: CompletionRequest) -> Completion:
        timeout = request.timeout_s or self.policy.timeout_s
        with progress.call(request.model) as call:
            try:
                async with asyncio.timeout(timeout):
                    completion = await self.inner.complete(request)
            except TimeoutError:
                message = f"{request.model}: no answer within {timeout:g} s"
                if not request.model.startswith("local/"):
                    raise TransientProviderError(message, model=request.model, status=408) from None
                written = f"{call.pieces} of at most {request.max_tokens} tokens written"
                why = "not retried: a local model is as slow again; raise the tier's timeout_s or lower max_tokens"
                raise PermanentProviderError(f"{message}: {written} ({why})", model=request.model, status=408) from None
        progress.finished(completion)
        return completion

    def _count(self, _state: object) -> None:
        self.retries += 1
