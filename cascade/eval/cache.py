"""A completer that remembers every model output, so re-analysis never re-runs a model.

Keyed by everything that changes what a model says (model, messages, max_tokens,
temperature, seed, stops, logprobs, endpoint, extra params) and nothing that doesn't (the API
key, prices). Cost is recomputed from the request's prices on a hit, so re-pricing a tier
needs no new calls. Stored in SQLite: one file, safe to share between runs.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from dataclasses import asdict, replace
from pathlib import Path

from cascade.protocols import Completer
from cascade.types import Completion, CompletionRequest

_SCHEMA = "CREATE TABLE IF NOT EXISTS completions (key TEXT PRIMARY KEY, model TEXT, completion TEXT NOT NULL)"


def request_key(request: CompletionRequest) -> str:
    material = {
        "model": request.model,
        "messages": request.messages,
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
        "stop": list(request.stop),
        "seed": request.seed,
        "logprobs": request.logprobs,
        "api_base": request.api_base,
        "stop_pattern": request.stop_pattern,
        "extra": request.extra,
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()


class CachingCompleter:
    """Serves repeated requests from SQLite; `hits` and `misses` say how much was reused."""

    def __init__(self, inner: Completer, path: str | Path):
        self.inner = inner
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_SCHEMA)
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

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

    def _get(self, key: str) -> Completion | None:
        with self._lock:
            row = self._db.execute("SELECT completion FROM completions WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        data = json.loads(row[0])
        if data.get("token_logprobs") is not None:
            data["token_logprobs"] = tuple(data["token_logprobs"])
        return Completion(**data)

    def _put(self, key: str, completion: Completion) -> None:
        with self._lock, self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO completions (key, model, completion) VALUES (?, ?, ?)",
                (key, completion.model, json.dumps(asdict(completion))),
            )

    def close(self) -> None:
        self._db.close()


def _repriced(completion: Completion, request: CompletionRequest) -> Completion:
    if request.input_price is None or request.output_price is None:
        return completion
    cost = completion.prompt_tokens * request.input_price + completion.completion_tokens * request.output_price
    return replace(completion, cost_usd=cost)
