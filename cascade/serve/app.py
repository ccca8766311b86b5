"""The HTTP server: `create_app(cascades, settings)` gives an OpenAI-compatible FastAPI app.

    POST /v1/chat/completions   the model name selects a cascade (its config's `name`)
    GET  /v1/models             the configured cascades
    GET  /v1/models/{id}        one of them (404 if it is not served)
    POST /v1/feedback           a verdict on a served run (with a store, see cascade.serve.feedback)
    GET  /health                liveness and load, no key needed
    GET  /metrics               Prometheus text format, no key needed

A request is authenticated, size-checked, parsed and limit-checked before it takes an admission
slot, so refusals are cheap. The run itself is the cascade's async path: providers are awaited,
and local llama.cpp inference runs in worker threads (see cascade.local.provider), so one slow
run never holds up the event loop. Runs are charged to the key and counted in metrics whether
they succeed or not.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import cast

from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import ValidationError

from cascade.budget.metering import Account, charge_to
from cascade.errors import UnsupportedParamError, UserError
from cascade.io.conversation import Conversation
from cascade.run.engine import Cascade, Event
from cascade.serve.api_errors import CLIENT_CLOSED, ApiError, install_handlers
from cascade.serve.audit_metrics import AuditCollector
from cascade.serve.auth import ApiKeys
from cascade.serve.disconnect import ClientDisconnected, Progress, cancelled_result, unless_disconnected
from cascade.serve.feedback import Feedback
from cascade.serve.http import HeadLimit
from cascade.serve.key_budgets import HoldLease, KeyAccounts, quota_error, refused_by, release
from cascade.serve.learning import BackgroundLearning, LearningSettings, learner_syncs, silent_keys
from cascade.serve.limits import Admission, check_tokens, read_body
from cascade.serve.metrics import ServeMetrics
from cascade.serve.responses import ReplyForm, cascade_info, completion, failure_message, headers, not_accepted
from cascade.serve.schemas import ChatCompletionRequest, ModelCard, ModelList
from cascade.serve.settings import ServeSettings
from cascade.serve.store_guard import guard_for
from cascade.serve.streaming import DONE, SseStream, after_first, next_event
from cascade.store import FeedbackRate, Store, open_store
from cascade.types import Attempt, CascadeResult, TextDelta, TierStart

log = logging.getLogger("cascade.serve")
JSON = "application/json"


class Server:
    """The state behind the routes: cascades, keys, budgets, admission and metrics."""

    def __init__(
        self,
        cascades: Mapping[str, Cascade],
        settings: ServeSettings,
        store: Store | None = None,
        *,
        store_dsn: str | None = None,
    ):
        if not cascades:
            raise UserError("serve needs at least one cascade")
        self.cascades = dict(cascades)
        self.settings = settings
        self.keys = ApiKeys(settings.api_keys)
        self.store_guard = guard_for(store, settings)
        self.key_accounts = KeyAccounts(settings.key_max_tokens, settings.key_max_cost_usd, store, self.store_guard)
        self.admission = Admission(settings.max_concurrency, settings.max_queue, retry_after_s=settings.retry_after_s)
        self.metrics = ServeMetrics(self.cascades)
        self.metrics.registry.register(AuditCollector(self.cascades))
        self.metrics.track_admission(lambda: self.admission.running, lambda: self.admission.waiting)
        self.feedback = Feedback(
            store,
            self.keys,
            self.metrics,
            max_body_bytes=settings.max_body_bytes,
            rate=FeedbackRate(settings.feedback_per_minute, 60.0),
            body_timeout_s=settings.body_timeout_s,
            guard=self.store_guard,
        )
        self.learning, self._learning_stores = self._background_learning(store, store_dsn)
        accounts = self.key_accounts
        self.hold_lease = HoldLease(accounts.store, accounts.owner) if accounts.store and accounts.enabled else None
        self.closing: list[Store] = []

    def _background_learning(
        self, store: Store | None, store_dsn: str | None
    ) -> tuple[BackgroundLearning | None, list[Store]]:
        if not self.settings.learn:
            return None, []
        learners = [learner for cascade in self.cascades.values() for learner in cascade.learners()]
        for why in silent_keys(self.cascades) if self.keys.enabled and store is not None else []:
            log.warning("%s", why)
        syncs, opened = learner_syncs(learners, store, store_dsn, open_store)
        timing = LearningSettings(self.settings.learn_interval_s, self.settings.learn_limit)
        return BackgroundLearning(syncs, timing, self.metrics.registry), opened

    @asynccontextmanager
    async def lifespan(self, _app: FastAPI) -> AsyncIterator[None]:
        """Background learning runs while the app does; its leases are handed back at shutdown, and
        audits in flight get their `audit.drain_s` to finish (the rest are recorded as dropped)."""
        if self.store_guard is not None:
            await self.store_guard.start()
        if self.hold_lease is not None:
            await self.hold_lease.start()
        if self.learning is not None:
            self.learning.start()
        try:
            yield
        finally:
            if self.learning is not None:
                await self.learning.stop()
            if self.hold_lease is not None:
                await self.hold_lease.stop()
            if self.store_guard is not None:
                await self.store_guard.stop()
            await asyncio.gather(*(asyncio.to_thread(c.close) for c in self.cascades.values()))
            for opened in [*self._learning_stores, *self.closing]:
                opened.close()

    async def health(self) -> Response:
        """200 "ok"; 200 "degraded" while the store is down and runs are spooled; 503 "unavailable"
        while chat requests are refused for want of the store."""
        guard = self.store_guard
        status = "ok" if guard is None or guard.up else "unavailable" if guard.refusing else "degraded"
        body = {
            "status": status,
            "models": sorted(self.cascades),
            "running": self.admission.running,
            "waiting": self.admission.waiting,
            "pid": os.getpid(),  # which worker answered (`cascade serve --workers N`)
            **({"store": guard.health()} if guard is not None else {}),
        }
        return Response(json.dumps(body), status_code=503 if status == "unavailable" else 200, media_type=JSON)

    async def models(self, request: Request) -> Response:
        self.keys.authenticate(request.headers.get("authorization"))
        cards = [ModelCard(id=name) for name in self.cascades]
        return Response(ModelList(data=cards).model_dump_json(), media_type=JSON)

    async def model(self, request: Request, model_id: str) -> Response:
        """One served cascade's card (`GET /v1/models/{id}`, as `client.models.retrieve(id)` asks)."""
        self.keys.authenticate(request.headers.get("authorization"))
        self.cascade_named(model_id)
        return Response(ModelCard(id=model_id).model_dump_json(), media_type=JSON)

    def cascade_named(self, model: str) -> Cascade:
        """The cascade a request's `model` names; 404 `model_not_found` naming the served ones if none."""
        cascade = self.cascades.get(model)
        if cascade is None:
            known = ", ".join(sorted(self.cascades))
            raise ApiError(
                404, f"unknown model {model!r}; this server has: {known}", code="model_not_found", param="model"
            )
        return cascade

    async def metrics_text(self) -> Response:
        return Response(self.metrics.render(), media_type=self.metrics.content_type)

    async def chat(self, request: Request) -> Response:
        """Every outcome, refusals and failures included, is counted once in metrics."""
        started = time.perf_counter()
        model = ""
        try:
            ident = self.keys.authenticate(request.headers.get("authorization"))
            body = parse_request(await read_body(request, self.settings.max_body_bytes, self.settings.body_timeout_s))
            model = body.model
            response = await self._answer(request, body, ident)
        except ClientDisconnected:
            response = Response(status_code=CLIENT_CLOSED)  # nobody reads it; counted as nginx's 499
        except UserError as exc:  # e.g. a query or tag the engine refuses: the request's fault
            self.metrics.reject("invalid_request_error")
            response = ApiError(400, str(exc)).response()
        except ApiError as exc:
            if exc.status < 500:
                self.metrics.reject(exc.code or exc.kind)
            response = exc.response()
        except Exception as exc:
            log.error("run failed: %s: %s", type(exc).__name__, exc)
            response = ApiError(500, "internal server error", code="internal_error").response()
        self.metrics.request(model, response.status_code, time.perf_counter() - started)
        return response

    async def _answer(self, request: Request, body: ChatCompletionRequest, ident: str) -> Response:
        cascade = self.cascade_named(body.model)
        check_tokens(
            body.prompt_text(),
            body.requested_tokens,
            max_query_tokens=self.settings.max_query_tokens,
            max_tokens=self.settings.max_tokens,
        )
        chat = await asyncio.to_thread(conversation_of, cascade, body)  # schema checks: milliseconds each
        if self.store_guard is not None:
            self.store_guard.admit()
        account = self.key_accounts.account(ident)
        if body.stream:
            sse = SseStream(body.model, include_usage=body.include_usage, form=reply_form(body, cascade))
            events = self._stream(request, cascade, chat, body, ident, account, sse)
            admitted = await anext(events)  # refusals (a full queue, a key that cannot pay) stay statuses
            run_header = {"x-cascade-run-id": sse.run_id}
            return StreamingResponse(after_first(admitted, events), media_type="text/event-stream", headers=run_header)
        run = self._recorded_run(cascade, chat, body, ident, account, Progress())
        result = await unless_disconnected(request, run)
        failed = self._store_failure(result)
        if failed is not None:
            raise failed
        why = refused_by(account, result)
        if why is not None:
            raise quota_error(why)
        return respond(result, body.model, reply_form(body, cascade))

    async def _stream(
        self,
        request: Request,
        cascade: Cascade,
        chat: Conversation,
        body: ChatCompletionRequest,
        ident: str,
        account: Account | None,
        sse: SseStream,
    ) -> AsyncIterator[str]:
        """The run as server-sent events (`cascade.serve.streaming`). The run is a task of its own
        (its slot and charges live in its context, and it records itself); this generator relays its
        events. Its first piece comes once the run is admitted; a client that leaves cancels the run."""
        events = asyncio.Queue[Event | None]()
        run = asyncio.ensure_future(
            self._recorded_run(cascade, chat, body, ident, account, Progress(), events.put_nowait, run_id=sse.run_id)
        )
        try:
            await unless_disconnected(request, next_event(events, run))  # None: admitted
            yield sse.comment("cascade admitted")
            while (event := await next_event(events, run)) is not DONE:
                for piece in sse.event(cast(TierStart | TextDelta | Attempt, event)):
                    yield piece
            result = run.result()
        except (ApiError, ClientDisconnected):
            raise  # before the first piece: the refusal is the response's status
        except Exception as exc:  # the status line is sent: report the failure in the stream
            log.error("streamed run failed: %s: %s", type(exc).__name__, exc)
            yield sse.error("internal server error", "internal_error")
            return
        finally:
            # The client left: stop the run, which records what it did. Not awaited: the framework
            # cancels this generator on every await from now on (anyio's cancel scope).
            run.cancel()
        for piece in self._closing(sse, result, account):
            yield piece

    def _closing(self, sse: SseStream, result: CascadeResult, account: Account | None) -> list[str]:
        """A stream's last pieces: the answer's end, or the refusal (store down, key budget spent)."""
        failed, why = self._store_failure(result), refused_by(account, result)
        if failed is not None:
            return [sse.error(failed.message, "store_unavailable")]
        return [sse.error(quota_error(why).message, "insufficient_quota")] if why else sse.end(result)

    def _store_failure(self, result: CascadeResult) -> ApiError | None:
        """A run that answered nothing while the store was down (its budget could not be checked) is
        a 503, not a 429 or 502."""
        if result.answer is None and self.store_guard is not None and not self.store_guard.up:
            return self.store_guard.unavailable()
        return None

    async def _recorded_run(
        self,
        cascade: Cascade,
        chat: Conversation,
        body: ChatCompletionRequest,
        ident: str,
        account: Account | None,
        progress: Progress,
        on_event: Callable[[Event | None], None] | None = None,
        *,
        run_id: str | None = None,
    ) -> CascadeResult:
        """`_run`, recorded and counted however it ends. Cancelled (its client left), it is recorded
        as far as it got, with what it was charged, once its calls in flight have settled; a request
        cancelled before it left the queue never started and is not recorded."""
        try:
            result = await self._run(cascade, chat, body, ident, account, progress, on_event, run_id=run_id)
        except asyncio.CancelledError:
            if progress.started:
                cancelled = cancelled_result(chat, progress, cascade.config, body.tag, run_id=run_id)
                await asyncio.shield(self._finish(body.model, ident, cancelled))
            raise
        await asyncio.shield(self._finish(body.model, ident, result))
        return result

    async def _run(
        self,
        cascade: Cascade,
        chat: Conversation,
        body: ChatCompletionRequest,
        ident: str,
        account: Account | None,
        progress: Progress,
        on_event: Callable[[Event | None], None] | None = None,
        *,
        run_id: str | None = None,
    ) -> CascadeResult:
        """Admission (the key's hold first, then a slot), then the run, its attempts kept in `progress`.

        With `on_event` (streaming), it gets None once the run is admitted, then every event."""
        limits = self.settings
        hold = await self.key_accounts.admit(
            account, cascade, chat, wait_s=limits.key_budget_wait_s, max_waiting=max(limits.max_queue, 1)
        )
        try:
            async with self.admission.slot():
                await release(hold)
                hold = None
                progress.started = True
                if on_event is not None:
                    on_event(None)
                with charge_to(*([account] if account is not None else [])) as progress.tab:
                    tokens = on_event is not None
                    events = cascade.astream(
                        chat, tag=body.tag, user=body.user, key=ident, tokens=tokens, run_id=run_id
                    )
                    async for item in events:
                        if isinstance(item, CascadeResult):  # nobody answers an approval over HTTP
                            return await cascade.arefuse_pending(item, "no one to ask over HTTP")
                        if isinstance(item, Attempt):
                            progress.attempts.append(item)
                        if on_event is not None:
                            on_event(item)
        finally:
            await release(hold)
        raise RuntimeError("the cascade's stream ended without a result")  # pragma: no cover

    async def _finish(self, model: str, ident: str, result: CascadeResult) -> None:
        await self.feedback.record(result, model)
        self._account(model, ident, result)

    def _account(self, model: str, ident: str, result: CascadeResult) -> None:
        self.metrics.run(model, result)
        log.info(
            "%s run=%s tier=%s accepted=%s tokens=%d key=%s%s",
            model,
            result.run_id,
            result.final_tier,
            result.accepted,
            result.total_tokens,
            ident,
            f" error={result.error}" if result.error else "",
        )


def parse_request(raw: bytes) -> ChatCompletionRequest:
    """A validated request, or a 400 naming the field and the problem."""
    try:
        return ChatCompletionRequest.model_validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        if errors and errors[0]["type"] == "json_invalid":
            raise ApiError(400, f"request body is not valid JSON: {errors[0]['msg']}") from None
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in errors[:5])
        first = ".".join(map(str, errors[0]["loc"])) if errors else None
        raise ApiError(400, f"invalid request: {problems}", param=first or None) from None


def conversation_of(cascade: Cascade, body: ChatCompletionRequest) -> Conversation:
    """The request's conversation, output contract and limits, checked; a 400 naming the problem if not."""
    try:
        return cascade.conversation(body.conversation(), **body.output_options())
    except UnsupportedParamError as exc:
        raise ApiError(400, str(exc), code=f"{exc.param}_unsupported", param=exc.param) from None
    except (UserError, ValueError) as exc:
        param = next((p for p in _PARAMS if str(exc).startswith(p)), "messages")
        raise ApiError(400, str(exc), param=param) from None


_PARAMS = (
    "response_format",
    "tool_choice",
    "tools",
    "max_tokens",
    "stop",
    "top_logprobs",
    "functions",
    "function_call",
)
"""Request fields a refusal's message may start with (OpenAI's `param`); anything else is in the messages."""


def reply_form(body: ChatCompletionRequest, cascade: Cascade) -> ReplyForm:
    refuse = cascade.config.on_reject == "error"
    return ReplyForm(legacy_functions=body.legacy_functions, logprobs=body.logprobs, refuse_unaccepted=refuse)


def respond(result: CascadeResult, model: str, form: ReplyForm) -> Response:
    """200 with the answer; 502 naming why no tier answered; 422 when none accepted its answer
    under `on_reject: error` (the answer, paid for, is in the error's `cascade.answer`)."""
    extra = headers(result)
    if result.error is not None:
        code = "invalid_output" if any(a.invalid for a in result.attempts) else "no_tier_answered"
        raise ApiError(502, failure_message(result), code=code, headers=extra, cascade=cascade_info(result))
    if form.refuses(result):
        info = cascade_info(result, with_answer=True)
        raise ApiError(422, not_accepted(result), code="not_accepted", headers=extra, cascade=info)
    return Response(completion(result, model, form).model_dump_json(), media_type=JSON, headers=extra)


def create_app(
    cascades: Mapping[str, Cascade],
    settings: ServeSettings | None = None,
    *,
    store: Store | None = None,
    store_dsn: str | None = None,
    owns_store: bool = False,
) -> FastAPI:
    """An app serving `cascades` by name; settings default to `ServeSettings.from_env()`.

    With a `store`, every run is recorded, `POST /v1/feedback` accepts verdicts on them, and the
    cascades' learners learn from them in the background while the app runs (its lifespan).
    `store_dsn` names the same store, so learners built with it use this connection.
    """
    server = Server(
        cascades, settings if settings is not None else ServeSettings.from_env(), store, store_dsn=store_dsn
    )
    app = FastAPI(title="cascade", docs_url=None, redoc_url=None, openapi_url=None, lifespan=server.lifespan)
    app.add_middleware(HeadLimit, limit=server.settings.max_header_bytes)
    install_handlers(app)
    app.state.server = server
    app.add_api_route("/health", server.health, methods=["GET"])
    app.add_api_route("/metrics", server.metrics_text, methods=["GET"])
    app.add_api_route("/v1/models", server.models, methods=["GET"])
    app.add_api_route("/v1/models/{model_id:path}", server.model, methods=["GET"])
    app.add_api_route("/v1/chat/completions", server.chat, methods=["POST"])
    app.add_api_route("/v1/feedback", server.feedback.post, methods=["POST"])
    return app
