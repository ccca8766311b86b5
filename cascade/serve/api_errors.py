"""Every error the server returns has OpenAI's shape: `{"error": {message, type, param, code}}`.

The openai client reads `error.message` into its exception, so a malformed request surfaces in
the caller's traceback with the reason, not as FastAPI's default 422 list.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from cascade.serve.disconnect import ClientDisconnected
from cascade.serve.schemas import CascadeInfo, ErrorBody, ErrorDetail

CLIENT_CLOSED = 499
"""nginx's status for a request whose client closed the connection before the answer."""

log = logging.getLogger("cascade.serve")

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    408: "invalid_request_error",
    404: "not_found_error",
    422: "unprocessable_entity_error",
    413: "invalid_request_error",
    431: "invalid_request_error",
}


class ApiError(Exception):
    """An error answer: status, a message for humans, and OpenAI's `type`/`code`/`param`."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
        cascade: CascadeInfo | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.headers = dict(headers or {})
        self.cascade = cascade

    @property
    def kind(self) -> str:
        if self.status == 429:
            return "rate_limit_error" if self.code != "insufficient_quota" else "insufficient_quota"
        return _TYPES.get(self.status, "server_error" if self.status >= 500 else "invalid_request_error")

    def response(self) -> Response:
        detail = ErrorDetail(message=self.message, type=self.kind, param=self.param, code=self.code)
        body = ErrorBody(error=detail, cascade=self.cascade).to_json()
        return Response(body, status_code=self.status, headers=self.headers, media_type="application/json")


def install_handlers(app: FastAPI) -> None:
    """Route framework errors (unknown path, wrong method, crashes) through the same shape."""

    async def api_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return exc.response()

    async def http_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        return ApiError(exc.status_code, str(exc.detail), headers=exc.headers).response()

    async def validation_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])
        return ApiError(400, f"invalid request: {problems}").response()

    async def crash(_request: Request, exc: Exception) -> Response:
        log.error("internal error: %s: %s", type(exc).__name__, exc)
        return ApiError(500, "internal server error", code="internal_error").response()

    async def client_left(_request: Request, _exc: Exception) -> Response:
        return Response(status_code=CLIENT_CLOSED)  # nobody reads it; logged as nginx's 499

    app.add_exception_handler(ClientDisconnected, client_left)
    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, crash)
