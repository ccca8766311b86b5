"""Optional dependencies, checked before a command starts: a missing one is a one-line error naming
the extra that brings it, not a traceback (`cascade serve` without prometheus_client) or a failure
after the work is done (`--plot` without matplotlib failed once the whole report had printed).

Each extra of pyproject.toml that a command needs is listed with the modules that must import;
tests/unit/test_extras.py holds this table and pyproject's extras together.
"""

from __future__ import annotations

import importlib.util
import sys

from cascade.errors import UserError

EXTRAS: dict[str, tuple[str, ...]] = {
    "local": ("llama_cpp",),
    "serve": ("fastapi", "uvicorn", "prometheus_client"),
    "plot": ("matplotlib",),
    "learn": ("sklearn",),
    "ray": ("ray",),
    "postgres": ("psycopg",),
    "checkpoint": ("langgraph.checkpoint.sqlite",),
    "otel": ("opentelemetry.sdk",),
}


def install_hint(extra: str) -> str:
    """The command that installs an extra, as the README installs the project."""
    return f"pip install -e '.[{extra}]'"


def missing(extra: str) -> list[str]:
    """The modules of `extra` that cannot be imported (found without importing them)."""
    return [module for module in EXTRAS[extra] if _absent(module)]


def require(extra: str, purpose: str) -> None:
    """A `UserError` naming the extra when `purpose` (e.g. 'cascade serve') cannot run without it."""
    absent = missing(extra)
    if absent:
        raise UserError(f"{purpose} needs the [{extra}] extra (no module {', '.join(absent)}): {install_hint(extra)}")


def _absent(module: str) -> bool:
    if module in sys.modules:
        return sys.modules[module] is None  # None: blocked (how tests take a module away)
    try:
        return importlib.util.find_spec(module) is None
    except (ImportError, ValueError):  # a parent package missing or blocked
        return True
