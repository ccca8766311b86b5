"""Runs into the store, and `POST /v1/feedback` to judge them later.

With a store (`cascade serve --store DSN`), every served run is recorded before its answer is
sent, failed runs included, so a client can give feedback on the run id it just received. The
store is synchronous (SQLite fsyncs each commit), so its calls run in a worker thread. A store
that fails does not cost the client its answer: the error is logged and counted.

    POST /v1/feedback {"run_id": "...", "kind": "thumbs_up|thumbs_down|correction|label",
                       "value": "the right answer (correction, label)", "user": "optional"}

Run ids are random 128-bit hex, so any valid API key may give feedback on a run it knows of.
The store keeps no API key: runs are recorded under their cascade's name only, and feedback under
the key's id (`key-` and 8 hex digits), so learners weigh each key's feedback apart
(`cascade.learning.trust`). Each key may give at most `feedback_per_minute` events in any 60 s
(checked in the store, so it holds across workers and restarts); beyond that it gets a 429
`rate_limit_exceeded` with `Retry-After`.
"""

from __future__ import annotations

import logging
import math
from typing import Literal

from fastapi import Request
from fastapi.responses import Response
from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cascade.errors import RateLimitError, RunNotFoundError, UserError
from cascade.serve.api_errors import ApiError
from cascade.serve.auth import ApiKeys
from cascade.serve.limits import BODY_TIMEOUT_S, read_body
from cascade.serve.metrics import ServeMetrics
from cascade.serve.store_guard import StoreGuard
from cascade.store import FeedbackRate, Store
from cascade.types import CascadeResult

log = logging.getLogger("cascade.serve")


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run_id: str = Field(min_length=1, max_length=200)
    kind: Literal["thumbs_up", "thumbs_down", "correction", "label"]
    value: str | None = Field(default=None, max_length=10_000)
    user: str | None = Field(default=None, max_length=200)

    @model_validator(mode="after")
    def _value_when_needed(self) -> FeedbackRequest:
        if self.kind in ("correction", "label") and not (self.value and self.value.strip()):
            raise ValueError(f"{self.kind} feedback needs a value (the right answer)")
        return self


class FeedbackResponse(BaseModel):
    object: Literal["feedback"] = "feedback"
    id: int
    run_id: str
    kind: str


class Feedback:
    """Records runs and takes feedback on them; without a store, feedback answers 501."""

    def __init__(
        self,
        store: Store | None,
        keys: ApiKeys,
        metrics: ServeMetrics,
        *,
        max_body_bytes: int,
        rate: FeedbackRate | None = None,
        body_timeout_s: float = BODY_TIMEOUT_S,
        guard: StoreGuard | None = None,
    ):
        self.store = store
        self.guard = guard if guard is not None or store is None else StoreGuard(store, None)
        self.keys = keys
        self.max_body_bytes = max_body_bytes
        self.rate = rate
        self.body_timeout_s = body_timeout_s
        self.errors = Counter(
            "cascade_store_errors", "Store writes that failed", ["operation"], registry=metrics.registry
        )
        self.received = Counter("cascade_feedback", "Feedback events recorded", ["kind"], registry=metrics.registry)
        self.limited = Counter(
            "cascade_feedback_rate_limited", "Feedback refused by the per-key rate limit", registry=metrics.registry
        )

    async def record(self, result: CascadeResult, config_name: str) -> None:
        """Record the run (spooled while the store is down, `cascade.serve.store_guard`)."""
        if self.guard is None:
            return
        try:
            await self.guard.record(result, config_name)
        except Exception as exc:  # the client still gets its answer; the loss is logged and counted
            self.errors.labels("record_run").inc()
            log.error("could not record run %s: %s: %s", result.run_id, type(exc).__name__, exc)

    async def post(self, request: Request) -> Response:
        """`POST /v1/feedback`: 200 with the feedback id, 400/404 naming the problem, 429 over the key's
        rate, 501 without a store."""
        key = self.keys.authenticate(request.headers.get("authorization"))
        body = _parse(await read_body(request, self.max_body_bytes, self.body_timeout_s))
        if self.store is None or self.guard is None:
            raise ApiError(501, "feedback needs a store: start the server with --store DSN", code="no_store")
        try:
            ident = await self.guard.call(
                self.store.add_feedback,
                body.run_id,
                kind=body.kind,
                value=body.value,
                user=body.user,
                key=key,
                rate=self.rate,
            )
        except RunNotFoundError as exc:
            raise ApiError(404, str(exc), code="run_not_found", param="run_id") from None
        except RateLimitError as exc:
            self.limited.inc()
            retry = {"Retry-After": str(max(1, math.ceil(exc.retry_after_s)))}
            raise ApiError(429, str(exc), code="rate_limit_exceeded", headers=retry) from None
        except UserError as exc:
            raise ApiError(400, str(exc)) from None
        self.received.labels(body.kind).inc()
        answer = FeedbackResponse(id=ident, run_id=body.run_id, kind=body.kind)
        return Response(answer.model_dump_json(), media_type="application/json")


def _parse(raw: bytes) -> FeedbackRequest:
    try:
        return FeedbackRequest.model_validate_json(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()[:5])
        raise ApiError(400, f"invalid feedback: {problems}") from None
