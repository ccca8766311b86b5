"""A completer that remembers every model output, so re-analysis never re-runs a model.

Keyed by every request field that can change what a model says (model, messages, sampling,
stops, logprobs, endpoint, extra params, response format, tools, ...) and nothing that doesn't (the
API key, prices, time limit). Cost is recomputed from the request's prices on a hit, so re-pricing a tier
needs no new calls. Stored in SQLite: one file, safe to share between runs and processes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import MISSING, Field, asdict, fields, replace
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_random_exponential

from cascade.completers.wrapper import WrapperCompleter
from cascade.protocols import Completer
from cascade.types import Completion, CompletionRequest, Probe, ToolCall

_SCHEMA = "CREATE TABLE IF NOT EXISTS completions (key TEXT PRIMARY KEY, model TEXT, completion TEXT NOT NULL)"
_INSERT = "INSERT OR REPLACE INTO completions (key, model, completion) VALUES (?, ?, ?)"
_T = TypeVar("_T")
log = logging.getLogger("cascade.eval")


NOT_IN_KEY = frozenset({"api_key", "input_price", "output_price", "timeout_s", "on_text"})
"""The request fields that do not change what a model says: the key, the prices (cost is recomputed on a
hit), the time limit and the live-text callback. Every other field is in the key, new ones included."""

KEYED_SINCE_THE_FIRST_CACHE = frozenset(
    {"model", "messages", "max_tokens", "temperature", "stop", "seed", "logprobs", "api_base", "stop_pattern", "extra"}
)
"""Always in the key. A field added later is keyed only when it differs from its default, so the keys of
requests made before it existed stay valid (and a cache filled then still answers)."""


def request_key(request: CompletionRequest) -> str:
    """The cache key: every request field that can change the model's output (all but `NOT_IN_KEY`)."""
    material: dict[str, Any] = {}
    for spec in fields(CompletionRequest):
        if spec.name in NOT_IN_KEY:
            continue
        value = getattr(request, spec.name)
        if spec.name not in KEYED_SINCE_THE_FIRST_CACHE and value == _default(spec):
            continue
        material[spec.name] = value.model_dump() if isinstance(value, BaseModel) else value
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()


def _default(spec: Field[Any]) -> Any:
    return spec.default_factory() if spec.default_factory is not MISSING else spec.default


class CachingCompleter(WrapperCompleter):
    """Serves repeated requests from SQLite; `hits` and `misses` say how much was reused.

    Many processes may share one file (Ray workers, parallel evaluations): the database is in WAL
    mode (readers never wait for the writer), each write is one short autocommit statement,
    writers queue on a busy timeout, and a lock that is still contended after that is retried
    with backoff. A write that fails even then is logged and counted in `write_errors`, never
    raised: the model has answered and been paid, so its answer goes back to the caller.
    """

    def __init__(self, inner: Completer, path: str | Path, *, busy_timeout_s: float = 30.0, retry_s: float = 120.0):
        super().__init__(inner)
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False)
        self._retry = Retrying(
            stop=stop_after_delay(retry_s),
            wait=wait_random_exponential(multiplier=0.02, max=1.0),
            retry=retry_if_exception(_contended),
            reraise=True,
        )
        self._locked(self._setup, busy_timeout_s)
        self.hits = 0
        self.misses = 0
        self.write_errors = 0

    def _setup(self, busy_timeout_s: float) -> None:
        self._db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "PRAGMA synchronous=NORMAL"
        )  # WAL + NORMAL: a crash may lose the newest entries, never corrupt
        self._db.execute(_SCHEMA)

    async def complete(self, request: CompletionRequest) -> Completion:
        key = request_key(request)
        cached = self._get(key)
        if cached is not None:
            self.hits += 1
            return _repriced(cached, request)
        completion = await self.inner.complete(request)
        self.misses += 1
        self._put(key, completion)
        return completion

    def holds(self, request: CompletionRequest) -> bool:
        """Whether `request` would be answered from the cache (no model call)."""
        return self._locked(self._select, request_key(request)) is not None

    def _get(self, key: str) -> Completion | None:
        row = self._locked(self._select, key)
        if row is None:
            return None
        return completion_from_json(json.loads(row[0]))

    def _select(self, key: str) -> tuple[str] | None:
        row: tuple[str] | None = self._db.execute("SELECT completion FROM completions WHERE key = ?", (key,)).fetchone()
        return row

    def _put(self, key: str, completion: Completion) -> None:
        row = (key, completion.model, json.dumps(asdict(completion)))
        try:
            self._locked(self._db.execute, _INSERT, row)
        except sqlite3.Error as exc:
            self.write_errors += 1
            log.warning("output cache %s: could not store an output (%s); the run goes on", self.path, exc)

    def _locked(self, action: Callable[..., _T], *args: Any) -> _T:
        """`action(*args)` under this object's lock, retried while another process holds the database."""
        with self._lock:
            return self._retry(action, *args)

    def close(self) -> None:
        self._db.close()


def _contended(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and any(word in str(exc).lower() for word in ("locked", "busy"))


def completion_from_json(data: dict[str, Any]) -> Completion:
    """A Completion from `dataclasses.asdict` output read back from JSON (lists become tuples)."""
    if data.get("token_logprobs") is not None:
        data["token_logprobs"] = tuple(data["token_logprobs"])
    if data.get("top_logprobs") is not None:
        data["top_logprobs"] = tuple(tuple((str(t), float(lp)) for t, lp in pos) for pos in data["top_logprobs"])
    data["tool_calls"] = tuple(ToolCall(**call) for call in data.get("tool_calls") or ())
    data["probes"] = tuple(Probe(**{**p, "logprobs": tuple(p["logprobs"])}) for p in data.get("probes") or ())
    return Completion(**data)


def _repriced(completion: Completion, request: CompletionRequest) -> Completion:
    if request.input_price is None or request.output_price is None:
        return completion
    cost = completion.prompt_tokens * request.input_price + completion.completion_tokens * request.output_price
    return replace(completion, cost_usd=cost)
