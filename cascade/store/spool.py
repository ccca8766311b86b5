"""Store writes that could not be made, kept on disk until the store answers again: no paid run is lost.

While the store is down (`StoreUnavailableError`), `cascade serve` appends each run it could not
record, and each budget settlement it could not apply, to a spool file of its own
(`<dir>/spool-<pid>-<random>.jsonl`: one JSON object a line, fsynced before the answer goes out),
and replays the spool into the store once it answers. Replaying twice is harmless: a run is
recorded once by its id, and a settlement applies only while its hold is still there. Each process
holds a lock on its own file, so a spool left by a process that died is replayed by the next one
that replays the same directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import uuid
from pathlib import Path
from typing import Any

from cascade.errors import StoreError, StoreUnavailableError
from cascade.store.base import Store
from cascade.types import CascadeResult, Usage

try:
    import fcntl
except ImportError:  # pragma: no cover  (Windows: only a process's own spool is replayed)
    fcntl = None  # type: ignore[assignment]


class Spool:
    """This process's spool file in `directory` (created with the first entry), and the replay of
    every spool found there."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory).expanduser()
        self.path = self.directory / f"spool-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
        self._lock = threading.Lock()
        self._handle: Any = None
        self.pending = 0

    def add_run(self, result: CascadeResult, config_name: str) -> None:
        self._append({"kind": "run", "config_name": config_name, "result": result.model_dump(mode="json")})

    def add_settlement(self, account: str, hold_id: int | None, spent: Usage) -> None:
        entry = {"kind": "settle", "account": account, "hold_id": hold_id}
        self._append(entry | {"spent": [spent.prompt_tokens, spent.completion_tokens, spent.cost_usd]})

    def _append(self, entry: dict[str, Any]) -> None:
        line = json.dumps(entry, ensure_ascii=False) + "\n"
        with self._lock:
            handle = self._open()
            handle.seek(0, os.SEEK_END)
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
            self.pending += 1

    def _open(self) -> Any:
        if self._handle is None:
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
                self._handle = self.path.open("a+", encoding="utf-8")
            except OSError as exc:
                raise StoreError(f"cannot write the spool {self.path}: {exc}") from exc
            if fcntl is not None:
                fcntl.flock(self._handle.fileno(), fcntl.LOCK_EX)  # held while this process lives
        return self._handle

    def replay(self, store: Store) -> int:
        """Write every spooled entry into `store` (this process's and those of dead processes); returns how
        many were written. Stops at the first StoreUnavailableError, keeping what is left for next time."""
        written = 0
        with self._lock:
            if self._handle is not None:
                written, self.pending = _replay_file(self._handle, store)
        for path in sorted(self.directory.glob("spool-*.jsonl")):
            if path != self.path:
                written += _replay_abandoned(path, store)
        return written

    def close(self) -> None:
        with self._lock:
            if self._handle is None:
                return
            empty = self._handle.seek(0, os.SEEK_END) == 0
            self._handle.close()
            self._handle = None
            if empty:
                self.path.unlink(missing_ok=True)


def default_spool_dir(store: Store) -> Path:
    """Beside a SQLite store's file (`runs.sqlite.spool/`); else in the user data dir, one per store."""
    path = getattr(store, "path", None)
    if isinstance(path, str) and path != ":memory:":
        return Path(path + ".spool")
    from cascade.store import default_store_path

    return default_store_path().parent / "spool" / hashlib.sha256(repr(store).encode()).hexdigest()[:12]


def _replay_abandoned(path: Path, store: Store) -> int:
    """Another process's spool, if that process is gone (its lock is free)."""
    if fcntl is None:  # pragma: no cover
        return 0
    try:
        handle = path.open("r+", encoding="utf-8")
    except OSError:
        return 0
    with handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return 0  # its process is alive and replays it itself
        written, left = _replay_file(handle, store)
        if not left:
            path.unlink(missing_ok=True)
        return written


def _replay_file(handle: Any, store: Store) -> tuple[int, int]:
    """Apply the file's entries in order; what could not be written is kept in the file.
    Returns how many were written and how many are left."""
    handle.seek(0)
    lines = [line for line in handle.read().splitlines() if line.strip()]
    written = 0
    for line in lines:
        try:
            _apply(json.loads(line), store)
        except StoreUnavailableError:
            break
        written += 1
    handle.seek(0)
    handle.truncate()
    handle.write("".join(line + "\n" for line in lines[written:]))
    handle.flush()
    os.fsync(handle.fileno())
    return written, len(lines) - written


def _apply(entry: dict[str, Any], store: Store) -> None:
    if entry["kind"] == "run":
        store.record_run(CascadeResult.model_validate(entry["result"]), config_name=entry["config_name"])
    else:
        prompt, completion, usd = entry["spent"]
        store.settle_budget(entry["account"], entry["hold_id"], Usage(prompt, completion, usd))  # type: ignore[attr-defined]
