"""Reading a data file a config names (a scorer, a token-budget model) without trusting it."""

from __future__ import annotations

import os
import stat
from pathlib import Path


def read_bounded(path: Path, limit: int) -> str:
    """A regular file's UTF-8 text; ValueError for anything else (a device such as /dev/zero, a
    directory) or anything past `limit` bytes."""
    with path.open("rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise ValueError("not a regular file")
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"larger than {limit:,} bytes")
    return data.decode("utf-8")
