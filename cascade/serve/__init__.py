"""`cascade serve`: cascades behind an OpenAI-compatible HTTP API (FastAPI + uvicorn).

Names are imported on first use, so `cascade --help` does not pay for importing FastAPI.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cascade.serve.app import create_app
    from cascade.serve.cooldown import CooldownCompleter, CoolingDownError
    from cascade.serve.settings import ServeSettings

__all__ = ["CooldownCompleter", "CoolingDownError", "ServeSettings", "create_app"]

_WHERE = {
    "create_app": "cascade.serve.app",
    "CooldownCompleter": "cascade.serve.cooldown",
    "CoolingDownError": "cascade.serve.cooldown",
    "ServeSettings": "cascade.serve.settings",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'cascade.serve' has no attribute {name!r}")
    return getattr(import_module(_WHERE[name]), name)
