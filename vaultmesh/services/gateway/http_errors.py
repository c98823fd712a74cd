"""Every error the gateway answers has one shape: ``{"error": "<what went wrong>"}``.

This covers VaultMesh errors (mapped to their ``http_status``), FastAPI's
validation errors, Starlette's 404/405, and anything unexpected (500, details
only in the log). Rejected input is counted in ``vaultmesh_bad_input_total``.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from vaultmesh.services.gateway.errors import LoginRequired, TooManyAttempts
from vaultmesh.shared.errors import BadRequest, Unauthorized, VaultMeshError
from vaultmesh.shared.metrics import ServiceMetrics

log = logging.getLogger(__name__)
_MAX_PROBLEMS = 5
_DESCRIPTIONS = {
    400: "Malformed request (for example a body that is not JSON)",
    401: "Not authenticated",
    404: "Not found",
    408: "The request was not received whole within the configured time",
    413: "Body larger than the configured limit",
    415: "Body in a format this endpoint does not read",
    422: "Well-formed request that fails validation",
    429: "Too many refused sign-ins from this address; see Retry-After",
    431: "Request head larger than the configured limit, or with too many headers",
    500: "Unexpected failure (details are in the gateway log)",
    503: "The bus or fleet-state is unavailable",
}


ERROR_SCHEMA_REF = "#/components/schemas/ErrorBody"


class ErrorBody(BaseModel):
    """What every error response carries."""

    error: str


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries documenting ``ErrorBody`` for ``statuses``."""
    # Explicit JSON content (not ``model``): FastAPI would otherwise file the error
    # schema under the route's own media type (text/html, text/event-stream).
    content = {"application/json": {"schema": {"$ref": ERROR_SCHEMA_REF}}}
    return {
        status: {"description": _DESCRIPTIONS.get(status, "Error"), "content": content}
        for status in statuses
    }


def route_label(request: Request) -> str:
    """A bounded label for metrics: the route's path template, or "unmatched"."""
    route = request.scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """A ``{"error": message}`` JSON response."""
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def error_status(exc: VaultMeshError) -> tuple[int, dict[str, str]]:
    """The HTTP status and extra headers for ``exc`` (logging server-side failures)."""
    if exc.http_status >= 500:
        log.warning("request failed", extra={"code": exc.code, "error": exc.message})
    if isinstance(exc, Unauthorized):
        return exc.http_status, {"WWW-Authenticate": 'Bearer realm="vaultmesh"'}
    if isinstance(exc, TooManyAttempts):
        return exc.http_status, {"Retry-After": str(exc.retry_after_s)}
    return exc.http_status, {}


def _describe(exc: RequestValidationError) -> str:
    problems = []
    for err in exc.errors()[:_MAX_PROBLEMS]:
        where = ".".join(str(part) for part in err.get("loc", ())) or "request"
        problems.append(f"{where}: {err.get('msg', 'invalid')}")
    extra = len(exc.errors()) - len(problems)
    if extra > 0:
        problems.append(f"and {extra} more")
    return "; ".join(problems)


def install_error_handlers(app: FastAPI, metrics: ServiceMetrics) -> None:
    """Register the handlers that give every error the ``{"error": ...}`` shape."""

    def count(request: Request, code: str) -> None:
        metrics.count_bad_input(route_label(request), code)

    async def on_vaultmesh(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, VaultMeshError)
        status, headers = error_status(exc)
        if isinstance(exc, BadRequest | Unauthorized):
            count(request, exc.code)
        return error_response(status, exc.message, headers)

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        if any(err.get("type") == "json_invalid" for err in exc.errors()):
            count(request, "bad_request")
            return error_response(400, "malformed JSON body")
        count(request, "invalid")
        return error_response(422, _describe(exc))

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code in (404, 405):
            count(request, "unknown_route" if exc.status_code == 404 else "method_not_allowed")
        return error_response(exc.status_code, str(exc.detail), dict(exc.headers or {}))

    async def on_login(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, LoginRequired)
        return RedirectResponse(f"/login?next={quote(exc.next_path, safe='/')}", status_code=303)

    async def on_gone(_request: Request, _exc: Exception) -> Response:
        # The client left (or BodyLimit cut the body off and already answered 413).
        return Response(status_code=400)

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        log.error(
            "unhandled error",
            exc_info=(type(exc), exc, exc.__traceback__),
            extra={"route": route_label(request)},
        )
        return error_response(500, "internal error; see the gateway log")

    app.add_exception_handler(VaultMeshError, on_vaultmesh)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(LoginRequired, on_login)
    app.add_exception_handler(ClientDisconnect, on_gone)
    app.add_exception_handler(Exception, on_unexpected)
