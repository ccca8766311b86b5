"""Server settings: limits, admission and budgets. API keys come from the environment only."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cascade.errors import UserError
from cascade.serve.auth import keys_from_env
from cascade.serve.http import HEADER_TIMEOUT_S, MAX_HEADER_BYTES
from cascade.serve.limits import BODY_TIMEOUT_S


class ServeSettings(BaseModel):
    """Everything `create_app` needs besides the cascades; defaults suit a local single-user server."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    max_concurrency: int = Field(default=16, ge=1)
    max_queue: int = Field(default=64, ge=0)
    retry_after_s: int = Field(default=1, ge=0)
    max_body_bytes: int = Field(default=1_000_000, ge=1)
    max_header_bytes: int = Field(default=MAX_HEADER_BYTES, ge=1024)
    max_tokens: int = Field(default=4096, ge=1)
    max_query_tokens: int = Field(default=8192, ge=1)
    header_timeout_s: float = Field(default=HEADER_TIMEOUT_S, gt=0)  # a request head must arrive within it
    body_timeout_s: float = Field(default=BODY_TIMEOUT_S, gt=0)  # and its body within this after
    key_max_tokens: int | None = Field(default=None, gt=0)
    key_max_cost_usd: float | None = Field(default=None, gt=0)
    key_budget_wait_s: float = Field(default=30.0, ge=0)
    store_timeout_s: float = Field(default=5.0, gt=0)  # one store call, connecting included
    store_outage: Literal["spool", "refuse"] = "spool"  # runs answered while the store is down: kept, or refused
    spool_dir: str | None = None  # where they are kept (default: beside a SQLite store, else the user data dir)
    feedback_per_minute: int = Field(default=60, ge=1)  # per API key, in any 60 s (cascade.serve.feedback)
    learn: bool = True  # learners keep learning from the store while serving (cascade.serve.learning)
    learn_interval_s: float = Field(default=5.0, gt=0)
    learn_limit: int = Field(default=500, ge=1)
    api_keys: tuple[str, ...] = Field(default=(), repr=False, exclude=True)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ, **values: Any) -> ServeSettings:
        """Settings with the API keys of `CASCADE_API_KEYS`."""
        return cls(api_keys=keys_from_env(environ), **values)

    @classmethod
    def checked(cls, environ: Mapping[str, str] = os.environ, **values: Any) -> ServeSettings:
        """`from_env`, with out-of-range values reported as a UserError naming each setting."""
        try:
            return cls.from_env(environ, **values)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise UserError(f"invalid server settings: {problems}") from None
