"""argparse `type=` converters with ranges, so a bad number is refused with argparse's own
message and exit status 2 (`argument --port: 99999 is not in 1..65535`) before anything starts.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def int_range(low: int, high: int | None = None) -> Callable[[str], int]:
    """An integer in `low..high` (no upper bound when `high` is None)."""

    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low or (high is not None and value > high):
            allowed = f"{low}..{high}" if high is not None else f"at least {low}"
            raise argparse.ArgumentTypeError(f"{value} is not {'in ' if high is not None else ''}{allowed}")
        return value

    convert.__name__ = "integer"
    return convert


def float_range(low: float = 0.0, *, inclusive: bool = False, high: float | None = None) -> Callable[[str], float]:
    """A finite number above `low` (or equal to it when `inclusive`), and at most `high` if given."""

    def convert(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        too_low = value < low if inclusive else value <= low
        if not math.isfinite(value) or too_low or (high is not None and value > high):
            bound = f"{'>=' if inclusive else '>'} {low:g}" + (f" and <= {high:g}" if high is not None else "")
            raise argparse.ArgumentTypeError(f"{text} is not a finite number {bound}")
        return value

    convert.__name__ = "number"
    return convert


positive_int = int_range(1)
non_negative_int = int_range(0)
port = int_range(1, 65535)
positive_float = float_range(0.0)


STORE_HELP = "the store: a SQLite path or postgresql:// DSN (default: $CASCADE_STORE, else the user data dir)"


def add_store(parser: argparse.ArgumentParser) -> None:
    """`--store DSN` (alias `--dsn`) for a command that reads or writes the run store."""
    parser.add_argument("--store", "--dsn", dest="store", metavar="DSN", help=STORE_HELP)
