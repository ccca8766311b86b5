"""The server's background learner: feedback and labels reach the learning routers while serving.

Every `interval_s` each learner (`cascade.learning.online.OnlineLearner`: the `adaptive` and
`bandit` routers, the `learned` pre-router) is brought up to date with the store:

- the process holding the learner's lease (`learn:<state key>`, renewed every tick, expiring after
  `lease_ttl_s` if its holder dies) learns the new labelled runs in steps of at most `limit`, each
  on a copy of the model in a worker thread, saves each step with compare-and-set, and swaps the
  new state in between requests;
- every other process (another `--workers` worker, another replica on the same PostgreSQL) sees
  the state's version move and swaps the saved state in.

So several workers serve with one learned state and one of them learns, and a learner never
blocks the event loop for longer than it takes to swap a reference. Failures (the store down, a
bad row) are logged and counted; serving goes on with the state it has.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge

from cascade.learning.judged import EvidenceConfig
from cascade.learning.online import DEFAULT_LIMIT, LearnerSync, OnlineLearner, holder_id
from cascade.store import Store

if TYPE_CHECKING:
    from cascade.run.engine import Cascade

log = logging.getLogger("cascade.serve")
MAX_STEPS_PER_TICK = 20  # a learner far behind catches up over several ticks, leaving others their turn


@dataclass(frozen=True)
class LearningSettings:
    """How often learners sync, how much one step learns, how long a lease outlives a silent holder."""

    interval_s: float = 5.0
    limit: int = DEFAULT_LIMIT
    lease_ttl_s: float | None = None  # default: 3 intervals + 10 s

    @property
    def ttl_s(self) -> float:
        return self.lease_ttl_s if self.lease_ttl_s is not None else 3 * self.interval_s + 10.0


class BackgroundLearning:
    """Runs `tick` every `interval_s` until stopped; `syncs` pairs each learner with its store."""

    def __init__(
        self,
        syncs: Sequence[LearnerSync],
        settings: LearningSettings,
        registry: CollectorRegistry,
        *,
        holder: str | None = None,
    ) -> None:
        self.syncs = list(syncs)
        self.settings = settings
        self.holder = holder or holder_id()
        self._task: asyncio.Task[None] | None = None
        labels = ["learner"]
        self.leading = Gauge(
            "cascade_learner_leading", "1 while this process learns for the learner", labels, registry=registry
        )
        self.version = Gauge(
            "cascade_learner_state_version", "Version of the learned state served", labels, registry=registry
        )
        self.learned = Counter("cascade_learned", "Labelled runs and answers learned here", labels, registry=registry)
        self.errors = Counter("cascade_learner_errors", "Learner ticks that failed", labels, registry=registry)

    async def tick(self) -> None:
        """Bring every learner up to date once (lead or follow); one failing learner never stops the others."""
        for sync in self.syncs:
            key = sync.learner.state_key
            try:
                await self._sync_one(sync)
            except Exception as exc:  # the store may be down; serve on with the state we have
                self.errors.labels(key).inc()
                log.error("learner %s: %s: %s", key, type(exc).__name__, exc)
            self.version.labels(key).set(max(sync.version, 0))

    async def _sync_one(self, sync: LearnerSync) -> None:
        key = sync.learner.state_key
        leader = await asyncio.to_thread(sync.store.acquire_lease, sync.lease, self.holder, self.settings.ttl_s)
        self.leading.labels(key).set(int(leader))
        if not leader:
            self._adopt(sync.learner, await asyncio.to_thread(sync.refresh))
            return
        for _ in range(MAX_STEPS_PER_TICK):
            state, moved = await asyncio.to_thread(sync.step, self.settings.limit)
            self._adopt(sync.learner, state)
            if moved is not None:
                self.learned.labels(key).inc(moved.learned)
                if moved.caught_up:
                    return

    @staticmethod
    def _adopt(learner: OnlineLearner, state: dict[str, object] | None) -> None:
        if state is not None:
            learner.adopt(state)

    async def run(self) -> None:
        while True:
            await self.tick()
            await asyncio.sleep(self.settings.interval_s)

    def start(self) -> None:
        if self.syncs and self._task is None:
            self._task = asyncio.create_task(self.run(), name="cascade-learner")

    async def stop(self) -> None:
        """Stop learning and hand the leases back, so another worker takes over without waiting."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for sync in self.syncs:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(sync.store.release_lease, sync.lease, self.holder)


def silent_keys(cascades: Mapping[str, Cascade]) -> list[str]:
    """Why API keys' feedback will not count for some learners: keys earn trust by agreeing with audits
    and escalations (`trust_keys: earned`), which a cascade without `audit:` never records."""
    found = []
    for name, cascade in cascades.items():
        for learner in cascade.learners() if cascade.config.audit is None else []:
            evidence = getattr(learner, "evidence", None)
            if isinstance(evidence, EvidenceConfig) and evidence.trust_keys == "earned":
                found.append(
                    f"{name}: {learner.state_key} will not learn from API keys' feedback: a key earns trust by "
                    "agreeing with audits and escalations, and this cascade has no `audit:` block: add "
                    "`audit: {rate: 0.05}` (recommended), or set `trust_keys: all` on it to trust every key"
                )
    return found


def learner_syncs(
    learners: Sequence[OnlineLearner], store: Store | None, store_dsn: str | None, opener: Callable[[str], Store]
) -> tuple[list[LearnerSync], list[Store]]:
    """Each learner with the store it learns from: the server's `store` (whose DSN is `store_dsn`)
    unless its config names another. Learners with neither are left out: they serve the state they
    loaded at build. Returns the syncs and the stores opened here (the caller closes them)."""
    opened: dict[str, Store] = {}
    syncs = []
    for learner in learners:
        dsn = learner.store_dsn
        if dsn is None or dsn == store_dsn:
            if store is None:
                log.warning("learner %s does not learn in the background: serve with --store", learner.state_key)
            else:
                syncs.append(LearnerSync(learner, store))
            continue
        if dsn not in opened:
            opened[dsn] = opener(dsn)
        syncs.append(LearnerSync(learner, opened[dsn]))
    return syncs, list(opened.values())
