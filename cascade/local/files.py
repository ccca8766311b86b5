"""Byte-level work for local weights: hashing, joining split parts, remembering what was verified.

Weights are 100 MB to 1 GB, so every step here avoids re-reading them: a file is hashed once
and its (path, size, mtime) fingerprint is recorded in the cache dir; joined files are hashed
while they are written and appear under their final name only when complete and correct.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cascade.errors import ModelNotFoundError

CHUNK = 8 * 1024 * 1024
RECORDS_FILE = "verified.json"
GGUF_MAGIC = b"GGUF"


def cache_dir() -> Path:
    """`$CASCADE_CACHE_DIR`, else `~/.cache/cascade/models`."""
    env = os.environ.get("CASCADE_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "cascade" / "models"


def file_has_gguf_magic(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(4) == GGUF_MAGIC


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _key(path: Path) -> str:
    return str(path.resolve())


def _fingerprint(path: Path, sha256: str) -> dict[str, Any]:
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha256}


def _load_records(root: Path) -> dict[str, Any]:
    try:
        data = json.loads((root / RECORDS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _save_records(root: Path, records: dict[str, Any]) -> None:
    """Atomic replace, so a crash or a concurrent writer never leaves half a JSON file."""
    root.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=root, prefix=RECORDS_FILE, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(records, handle, indent=1, sort_keys=True)
        os.replace(tmp, root / RECORDS_FILE)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _remember(root: Path, path: Path, sha256: str | None) -> None:
    records = _load_records(root)
    if sha256 is None:
        if records.pop(_key(path), None) is None:
            return
    else:
        records[_key(path)] = _fingerprint(path, sha256)
    with contextlib.suppress(OSError):  # a read-only cache only costs a re-hash next time
        _save_records(root, records)


def is_recorded(root: Path, path: Path, sha256: str) -> bool:
    """True when this exact file (same size and mtime) already hashed to `sha256`."""
    record = _load_records(root).get(_key(path))
    return record is not None and record == _fingerprint(path, sha256)


def _hash_ok(path: Path, expected: str, root: Path) -> tuple[bool, str]:
    if is_recorded(root, path, expected):
        return True, expected
    actual = sha256_file(path)
    _remember(root, path, actual if actual == expected else None)
    return actual == expected, actual


def verify_in_place(path: Path, expected: str, root: Path, *, hint: str) -> None:
    """Hash a file we must not move (it belongs to a pip package), once per file version."""
    ok, actual = _hash_ok(path, expected, root)
    if not ok:
        raise ModelNotFoundError(
            f"model file {path} is corrupt: sha256 {actual} does not match the expected {expected}; {hint}"
        )


def _copy_hashing(parts: Iterable[Path], handle: Any) -> str:
    digest = hashlib.sha256()
    for part in parts:
        with part.open("rb") as source:
            while block := source.read(CHUNK):
                digest.update(block)
                handle.write(block)
    return digest.hexdigest()


def _check_space(directory: Path, size: int) -> None:
    free = shutil.disk_usage(directory).free
    if free < size:
        raise ModelNotFoundError(
            f"not enough disk space in {directory} to join the model: need {size:,} bytes, "
            f"{free:,} free; set CASCADE_CACHE_DIR to a bigger disk"
        )


def _write_joined(parts: list[Path], target: Path, expected: str, hint: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            actual = _copy_hashing(parts, handle)
        if actual != expected:
            raise ModelNotFoundError(
                f"joined model {target.name} is corrupt: sha256 {actual} does not match the "
                f"expected {expected}; the bad file was removed; {hint}"
            )
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; the cache may be shared
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def join_parts(parts: list[Path], target: Path, expected: str, size: int, *, hint: str) -> Path:
    """Join `parts` in order into `target` once; reuse it while it still hashes right."""
    root = target.parent
    if target.is_file():
        if target.stat().st_size == size and _hash_ok(target, expected, root)[0]:
            return target
        target.unlink()  # stale or damaged: the parts are the source of truth, so rejoin
    root.mkdir(parents=True, exist_ok=True)
    _check_space(root, size)
    _write_joined(parts, target, expected, hint)
    _remember(root, target, expected)
    return target
