"""Distributed evaluation on Ray: items are split into chunks, each chunk evaluated by a Ray task.

Each task rebuilds the cascade from its (picklable) config and runs the ordinary local
`evaluate` on its chunk, with the same output cache file when one is given (SQLite in WAL mode
takes writers from several processes), so a chunk's results are exactly what the local executor
would produce for those items. The driver puts the chunks back in input order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cascade.completers.plugins import make_completer
from cascade.config.schema import CascadeConfig
from cascade.errors import UserError
from cascade.eval.data.items import Item
from cascade.eval.data.logs import LogTable
from cascade.eval.live.cache import CachingCompleter
from cascade.eval.live.runner import EvalRun, evaluate
from cascade.extras import install_hint
from cascade.run.engine import Cascade


def _evaluate_chunk(config: CascadeConfig, cache: str | None, items: list[Item], template: str | None) -> EvalRun:
    """What one Ray task runs: the local evaluation of one chunk, in the worker process."""
    completer: Any = make_completer(config)
    if cache:
        completer = CachingCompleter(completer, cache)
    return asyncio.run(evaluate(Cascade(config, completer=completer), items, template=template))


def chunks(items: Sequence[Item], n: int) -> list[list[Item]]:
    """`n` contiguous, nearly equal chunks (order preserved; no empty chunk)."""
    n = max(1, min(n, len(items)))
    size, extra = divmod(len(items), n)
    out, start = [], 0
    for i in range(n):
        end = start + size + (1 if i < extra else 0)
        out.append(list(items[start:end]))
        start = end
    return out


def merge(runs: Sequence[EvalRun]) -> EvalRun:
    """Chunks back into one run, in order."""
    first = runs[0].log
    log = LogTable(first.models, [i for r in runs for i in r.log.items], source=first.source, fmt=first.fmt)
    return EvalRun(
        [i for r in runs for i in r.items],
        log,
        [x for r in runs for x in r.results],
        [c for r in runs for c in r.correct],
    )


def evaluate_on_ray(
    config: CascadeConfig,
    items: Sequence[Item],
    *,
    template: str | None = None,
    cache: Path | None = None,
    address: str | None = None,
    n_chunks: int | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> EvalRun:
    """Evaluate `items` with Ray tasks (a local Ray instance unless `address` names a cluster)."""
    try:
        import ray
    except ImportError:
        raise UserError(f"the Ray executor needs Ray: {install_hint('ray')}") from None
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    task = ray.remote(_evaluate_chunk)
    parts = chunks(items, n_chunks or int(ray.available_resources().get("CPU", 1)) * 2)
    pending = [task.remote(config, str(cache) if cache else None, part, template) for part in parts]
    done: dict[int, EvalRun] = {}
    refs = {ref: i for i, ref in enumerate(pending)}
    while refs:
        ready, _ = ray.wait(list(refs), num_returns=1)
        index = refs.pop(ready[0])
        done[index] = ray.get(ready[0])
        if progress:
            progress("cascade", len(parts[index]))
    return merge([done[i] for i in range(len(parts))])
