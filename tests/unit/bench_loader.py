"""Import a script of `benchmarks/` so tests can check its own logic."""

from __future__ import annotations

import importlib
from types import ModuleType


def load_benchmark(name: str) -> ModuleType:
    return importlib.import_module(f"benchmarks.{name}")
