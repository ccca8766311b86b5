"""Which runs are audited: a hash of the run id against the rate, so the choice is random but checkable.

sha256(seed:run_id) read as a number in [0, 1): a run is audited when it falls below the rate. Run
ids are random, so the audited runs are a uniform random share, independent of whether the answer
was right, which is what makes the re-weighted estimate unbiased; and anyone holding the seed can
recompute from the stored run ids which runs had to be audited (none skipped, none picked by hand).
"""

from __future__ import annotations

import hashlib

_SCALE = float(1 << 64)


def audit_unit(seed: int, run_id: str) -> float:
    """The run's stable number in [0, 1)."""
    digest = hashlib.sha256(f"{seed}:{run_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


def is_audited(rate: float, seed: int, run_id: str) -> bool:
    return audit_unit(seed, run_id) < rate
