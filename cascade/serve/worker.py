"""One serving process's app, built from a `ServeSpec`: the same in `cascade serve` and in each of
its `--workers N` processes.

uvicorn starts worker processes itself and each imports an app by name, so the parent hands the
spec to them in the `CASCADE_SERVE_SPEC` environment variable (API keys stay in their own
variable, `CASCADE_API_KEYS`, and are never written into the spec). Every worker builds its own
cascades and opens its own connection to the store; what they share lives in the store: runs,
feedback, learned state (one worker learns at a time, the others follow; `cascade.serve.learning`)
and nothing else needs sharing: experiment assignment is a hash, the same in every process.
Per-process by design: admission limits (`--max-concurrency` is per worker), model cooldowns, and
`/metrics` (each scrape reaches one worker; label scrapes by worker or scrape each port).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from cascade.serve.settings import ServeSettings

SPEC_ENV = "CASCADE_SERVE_SPEC"


class ServeSpec(BaseModel):
    """What a serving process needs besides the API keys."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    configs: list[Path]
    settings: dict[str, Any]
    store: str | None = None
    cooldown_failures: int = 3
    cooldown_s: float = 30.0

    def to_env(self) -> str:
        return self.model_dump_json()


def build_app(spec: ServeSpec) -> Any:
    """The FastAPI app for `spec`: cascades built to learn in the background from the spec's store."""
    from cascade.serve.app import create_app
    from cascade.serve.cli_serve import load_cascades
    from cascade.store import open_store

    settings = ServeSettings.from_env(**spec.settings)
    background = spec.store is not None and settings.learn
    cascades = load_cascades(
        spec.configs,
        cooldown_failures=spec.cooldown_failures,
        cooldown_s=spec.cooldown_s,
        learning_store=spec.store,
        learn_on_build=not background,
    )
    store = open_store(spec.store) if spec.store else None
    return create_app(cascades, settings, store=store, store_dsn=spec.store, owns_store=True)


def app_from_env() -> Any:
    """uvicorn's factory in each worker process (`cascade.serve.worker:app_from_env`)."""
    raw = os.environ.get(SPEC_ENV)
    if not raw:
        raise RuntimeError(f"{SPEC_ENV} is not set: start workers with `cascade serve --workers N`")
    return build_app(ServeSpec.model_validate_json(raw))
