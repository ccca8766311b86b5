"""Reading a store's runs or labelled runs from a cursor to the end, one page at a time.

Learners resume from a cursor and reports read everything; both want every record once,
without holding the whole table in memory.
"""

from __future__ import annotations

from collections.abc import Iterator

from cascade.store.base import LabelledRun, RunRecord, Store

PAGE = 500


def iter_runs(store: Store, since: int = 0, *, config_name: str | None = None, page: int = PAGE) -> Iterator[RunRecord]:
    """Runs with `seq` > `since`, in insertion order."""
    while True:
        batch = store.runs(since_id=since, limit=page, config_name=config_name)
        yield from batch
        if len(batch) < page:
            return
        since = batch[-1].seq


def iter_labelled(store: Store, since: int = 0, *, page: int = PAGE) -> Iterator[LabelledRun]:
    """Labelled runs whose feedback `seq` > `since`, in feedback order."""
    while True:
        batch = store.labelled_runs(since_seq=since, limit=page)
        yield from batch
        if len(batch) < page:
            return
        since = batch[-1].seq
