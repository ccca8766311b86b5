"""Audits off the request path: a sampled share of the answers served below the strongest tier is also
put to the strongest tier, in the background, and compared.

`Auditor.after_run` is all the engine calls as a run ends: it marks the result (`audit_rate`,
`audited`), tells the monitor, queues the run's escalation pairs for the store, and queues its
audit when the run is chosen (`cascade.audit.selection`). It never waits and never raises, so a
user's request is neither delayed nor failed by an audit. Audits and store writes run on one
background thread with its own event loop (so they outlive a sync `Cascade.run`'s loop and never
compete with a server's), at most `concurrency` model calls at once and `max_queue` waiting; an
audit beyond that is dropped. `close` (a server's shutdown, the end of a script via atexit) waits
`drain_s` for audits in flight, then drops the rest. A dropped audit or a failed reference call is
stored (`agree` None, with the reason) and counted against the promise, never silently lost.

Audit calls run outside every budget context: they are not charged to the user's key or the
query's budget. Their spend is counted on its own: `Snapshot.spend.audits_usd`, the pair's
`cost_usd` in the store (`cascade report`), `cascade_audit_cost_usd` in `/metrics`.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import logging
import threading
import weakref
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from cascade.audit.agreement import answer_format, same_answer
from cascade.audit.monitor import Monitor
from cascade.audit.pairs import escalation_pairs
from cascade.audit.selection import is_audited
from cascade.config.audit import AuditConfig
from cascade.errors import ProviderError
from cascade.io.conversation import Conversation
from cascade.run.tiers import TierRuntime
from cascade.store import Store, open_store
from cascade.store.base import ReferencePair
from cascade.types import CascadeResult, Usage

log = logging.getLogger("cascade.audit")
Sink = Callable[[Sequence[ReferencePair]], None]
_OPEN: weakref.WeakSet[Auditor] = weakref.WeakSet()


class Auditor:
    """The audits of one cascade (one experiment variant); see the module docstring."""

    def __init__(
        self,
        config: AuditConfig,
        reference: TierRuntime,
        reference_index: int,
        *,
        config_name: str,
        variant: str | None = None,
        sink: Sink | None = None,
    ) -> None:
        self.config = config
        self.reference = reference
        self.reference_index = reference_index
        self.config_name = config_name
        self.variant = variant
        self.sink = sink
        label = f"{config_name}@{variant}" if variant else config_name
        self.monitor = Monitor(config, reference.config, label)
        self.write_errors = 0
        self._loop = _BackgroundLoop(f"cascade-audit-{label}")
        self._audits: set[concurrent.futures.Future[None]] = set()
        self._writes: set[concurrent.futures.Future[None]] = set()
        self._calls: asyncio.Semaphore | None = None
        self._closed = False
        _OPEN.add(self)

    @property
    def pending(self) -> int:
        return len(self._audits)

    def after_run(self, result: CascadeResult, chat: Conversation) -> CascadeResult:
        """Mark, count and queue what `result` tells (see the module docstring); returns the marked result."""
        try:
            return self._after_run(result, chat)
        except Exception as exc:  # an audit must never cost the user the answer
            log.error("%s: audit bookkeeping failed for run %s: %s", self.config_name, result.run_id, exc)
            return result

    def _after_run(self, result: CascadeResult, chat: Conversation) -> CascadeResult:
        form = answer_format(self.reference.config, chat.output.kind)
        name = self.reference.config.name
        top = next((a for a in reversed(result.attempts) if a.tier == name and a.answer is not None), None)
        below = result.answer is not None and result.final_tier != name
        rate = self.config.rate if below else None
        audited = below and is_audited(self.config.rate, self.config.seed, result.run_id)
        marked = result.model_copy(update={"audit_rate": rate, "audited": audited})
        self.monitor.served(marked, rate, audited, chat.output.kind)
        if top is not None:
            pairs = escalation_pairs(marked, top, form, config_name=self.config_name, variant=self.variant)
            if pairs:
                self._write(pairs)
        if audited:
            self._queue_audit(marked, chat, form)
        return marked

    # -- audits --------------------------------------------------------------------------------
    def _queue_audit(self, result: CascadeResult, chat: Conversation, form: str) -> None:
        if self._closed or len(self._audits) >= self.config.concurrency + self.config.max_queue:
            why = "the auditor is closed" if self._closed else f"{len(self._audits)} audits in flight or waiting"
            self._write([self._settle(result, form, None, Usage(), "dropped", f"dropped: {why}")])
            return
        future = self._loop.submit(self._audit(result, chat, form))
        self._audits.add(future)
        future.add_done_callback(self._audits.discard)

    async def _audit(self, result: CascadeResult, chat: Conversation, form: str) -> None:
        if self._calls is None:
            self._calls = asyncio.Semaphore(self.config.concurrency)
        try:
            async with self._calls:
                answer, usage = await self._ask_reference(chat)
        except asyncio.CancelledError:
            pair = self._settle(result, form, None, Usage(), "dropped", "dropped: still running at shutdown")
            await asyncio.to_thread(self._store, [pair])
            raise
        except ProviderError as exc:
            pair = self._settle(result, form, None, Usage(), "failed", f"failed: {exc}")
            await asyncio.to_thread(self._store, [pair])
            return
        agree = same_answer(result.answer, answer, form)
        pair = self._settle(result, form, (answer, agree), usage, "agree" if agree else "disagree")
        await asyncio.to_thread(self._store, [pair])

    async def _ask_reference(self, chat: Conversation) -> tuple[str | None, Usage]:
        """What the strongest tier answers, as the workflow would have it (its verifier may vote samples)."""
        tier, cap = self.reference, self.reference.config.max_tokens
        first = await tier.sample(chat, max_tokens=cap, index=0)
        if tier.read(first, chat).invalid is not None:
            return None, Usage.of([first])
        samples, verdict, answer = await tier.verify(
            chat, first, tier_index=self.reference_index, previous=[], max_tokens=cap
        )
        return answer, Usage.of(samples) + verdict.usage

    def _settle(
        self,
        result: CascadeResult,
        form: str,
        verdict: tuple[str | None, bool] | None,
        usage: Usage,
        outcome: str,
        note: str = "",
    ) -> ReferencePair:
        """Count an audit's outcome in the monitor; the pair to store."""
        agree = verdict[1] if verdict is not None else None
        self.monitor.resolved(result.run_id, agree, usage.cost_usd, outcome)
        attempt = next((a for a in result.attempts if a.tier == result.final_tier), None)
        return ReferencePair(
            run_id=result.run_id,
            config_name=self.config_name,
            source="audit",
            tier=result.final_tier or "",
            answer=result.answer,
            reference_tier=self.reference.config.name,
            reference=verdict[0] if verdict is not None else None,
            agree=agree,
            weight=1 / self.config.rate,
            served=True,
            confidence=attempt.confidence if attempt else None,
            threshold=attempt.threshold if attempt else None,
            answer_format=form,
            variant=self.variant,
            cost_usd=usage.cost_usd,
            tokens=usage.prompt_tokens + usage.completion_tokens,
            note=note,
        )

    # -- the store -----------------------------------------------------------------------------
    def _write(self, pairs: list[ReferencePair]) -> None:
        """Store `pairs` on the background thread (at once, after `close`)."""
        if self.sink is None:
            return
        if self._closed:
            self._store(pairs)
            return
        future = self._loop.submit(asyncio.to_thread(self._store, pairs))
        self._writes.add(future)
        future.add_done_callback(self._writes.discard)

    def _store(self, pairs: Sequence[ReferencePair]) -> None:
        if self.sink is None:
            return
        try:
            self.sink(pairs)
        except Exception as exc:  # the store may be down: the monitor has counted it already
            self.write_errors += 1
            log.error("%s: could not store %d reference pair(s): %s: %s", self.config_name, len(pairs),
                      type(exc).__name__, exc)  # fmt: skip

    # -- closing -------------------------------------------------------------------------------
    def close(self, timeout: float | None = None) -> int:
        """Stop taking audits, wait up to `timeout` (default `drain_s`) for those in flight, drop the rest
        (each recorded as dropped). Returns how many were dropped. Safe to call twice."""
        if self._closed:
            return 0
        self._closed = True
        _OPEN.discard(self)
        wait = self.config.drain_s if timeout is None else timeout
        dropped = self._loop.stop(wait)
        if isinstance(self.sink, StoreSink):
            self.sink.close()
        if dropped:
            log.warning("%s: %d audit(s) dropped at close (running after %.0f s)", self.config_name, dropped, wait)
        return dropped


class StoreSink:
    """Pairs into the store at `address` (opened on first use, on the auditor's thread)."""

    def __init__(self, address: str | None, opener: Callable[[str | None], Store] = open_store) -> None:
        self.address = address
        self._opener = opener
        self._store: Store | None = None
        self._lock = threading.Lock()

    def __call__(self, pairs: Sequence[ReferencePair]) -> None:
        with self._lock:
            if self._store is None:
                self._store = self._opener(self.address)
            self._store.add_reference_pairs(pairs)

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None


class _BackgroundLoop:
    """An event loop on a daemon thread, started on first use."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, coro: Coroutine[Any, Any, None]) -> concurrent.futures.Future[None]:
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=self._loop.run_forever, name=self.name, daemon=True)
                self._thread.start()
            return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def stop(self, wait_s: float) -> int:
        """Wait up to `wait_s` for the loop's tasks, cancel what is left (and let it clean up), stop the
        loop. Returns how many tasks were cancelled."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = None
        if loop is None or thread is None:
            return 0
        cancelled = asyncio.run_coroutine_threadsafe(_drain(wait_s), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        if not thread.is_alive():
            loop.close()
        return cancelled


async def _drain(wait_s: float) -> int:
    """Wait for the loop's other tasks, cancel the ones still running after `wait_s`; how many were."""
    me = asyncio.current_task()
    tasks = [t for t in asyncio.all_tasks() if t is not me]
    if not tasks:
        return 0
    _, late = await asyncio.wait(tasks, timeout=wait_s)
    for task in late:
        task.cancel()
    await asyncio.gather(*late, return_exceptions=True)
    # writes of the dropped audits were scheduled by their cancellation handlers: let them finish
    rest = [t for t in asyncio.all_tasks() if t is not me]
    if rest:
        await asyncio.wait(rest, timeout=10)
    return len(late)


@atexit.register
def _close_all() -> None:
    """At interpreter exit, audits still in flight get their `drain_s` to finish."""
    for auditor in list(_OPEN):
        auditor.close()
