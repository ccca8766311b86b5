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

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from cascade.errors import UserError
from cascade.serve.settings import ServeSettings

if TYPE_CHECKING:
    from cascade.run.engine import Cascade

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
    store = open_store(spec.store, timeout_s=settings.store_timeout_s) if spec.store else None
    if store is not None:
        store.check_writable()  # refused at start (exit 2), not one unrecorded run at a time
    return create_app(cascades, settings, store=store, store_dsn=spec.store, owns_store=True)


def load_cascades(
    paths: Sequence[Path],
    *,
    cooldown_failures: int = 3,
    cooldown_s: float = 30.0,
    learning_store: str | None = None,
    learn_on_build: bool = True,
) -> dict[str, Cascade]:
    """One Cascade per config, keyed by its name; two configs with one name are an error.

    Learning routers learn from `learning_store` (the server's store) unless their config names one.
    """
    from cascade.completers.litellm_setup import import_litellm
    from cascade.completers.plugins import make_completer
    from cascade.completers.routable import check_routable
    from cascade.config.schema import load_config
    from cascade.run.engine import Cascade
    from cascade.serve.cooldown import CooldownCompleter

    cascades: dict[str, Cascade] = {}
    sources: dict[str, Path] = {}
    for path in paths:
        config = load_config(path)
        if config.name in cascades:
            raise UserError(f"{path} and {sources[config.name]} both name their cascade {config.name!r}")
        completer = make_completer(config)
        if config.completer.type == "litellm":
            import_litellm()  # seconds to import: pay it at start, not inside the first request's timeout
        if cooldown_failures > 0:
            completer = CooldownCompleter(completer, failures=cooldown_failures, cooldown_s=cooldown_s)
        cascade = Cascade(config, completer=completer, learning_store=learning_store, learn_on_build=learn_on_build)
        # an unknown model refuses to start, not a 502 on every request; an unset key is a warning
        for problem in check_routable(cascade.runnable_configs.values()):
            logging.getLogger("cascade.serve").warning("%s", problem)
        cascades[config.name], sources[config.name] = cascade, path
    return cascades


def app_from_env() -> Any:
    """uvicorn's factory in each worker process (`cascade.serve.worker:app_from_env`)."""
    raw = os.environ.get(SPEC_ENV)
    if not raw:
        raise RuntimeError(f"{SPEC_ENV} is not set: start workers with `cascade serve --workers N`")
    return build_app(ServeSpec.model_validate_json(raw))
