"""A data file that cannot be read is the user's mistake: a `UserError` naming the file and why.

Datasets and logs come from users (`cascade eval --dataset`, `replay`, `tune --logs`); a binary
file, a stray line of text in a JSONL or a CSV of another shape ended in a Python traceback.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cascade.errors import UserError


@contextmanager
def reading(path: Path, what: str, fmt: str | None = None) -> Iterator[None]:
    """Turn decode, parse and shape errors raised while reading `path` into one clear `UserError`."""
    try:
        yield
    except UnicodeDecodeError as exc:
        byte = exc.object[exc.start]
        raise UserError(f"{what} {path} is not UTF-8 text (byte 0x{byte:02x}); save it as UTF-8") from exc
    except json.JSONDecodeError as exc:
        raise UserError(f"{what} {path} is not valid JSON: {exc.msg} at line {exc.lineno}") from exc
    except (csv.Error, KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        shape = f" as {fmt}" if fmt else ""
        detail = f"missing field {exc}" if isinstance(exc, KeyError) else f"{type(exc).__name__}: {exc}"
        raise UserError(f"{what} {path} cannot be read{shape}: {detail}"[:500]) from exc


def json_lines(path: Path, what: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line of a JSONL file; any other line is a `UserError`."""
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(f"{what} {path}:{number}: not valid JSON: {exc.msg}") from exc
            if not isinstance(record, dict):
                raise UserError(f"{what} {path}:{number}: each line must be a JSON object, got {type(record).__name__}")
            yield number, record
