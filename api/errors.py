"""One JSON error shape for every error: {"error": {"code": ..., "message": ...}}."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import Match, Mount

from qa.errors import (
    BackendUnavailable,
    DocumentError,
    IndexBusy,
    IndexCorrupt,
    IndexFull,
    IndexMismatch,
    IndexMissing,
    IndexReadOnly,
    IndexWriteFailed,
    InvalidInput,
    QAError,
    UnknownDocument,
)

from .schemas import ErrorResponse

log = logging.getLogger("api")

_STATUS = [
    (UnknownDocument, 404, "unknown_document"),
    (InvalidInput, 422, "invalid_input"),
    (DocumentError, 422, "invalid_document"),
    (IndexBusy, 503, "index_busy"),
    (BackendUnavailable, 503, "backend_unavailable"),
    (IndexMissing, 503, "index_missing"),
    (IndexMismatch, 503, "index_mismatch"),
    (IndexCorrupt, 503, "index_corrupt"),
    (IndexFull, 507, "insufficient_storage"),
    (IndexReadOnly, 503, "index_read_only"),
    (IndexWriteFailed, 500, "index_write_failed"),
]
_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 413: "body_too_large", 415: "unsupported_media_type",
               422: "invalid_input", 429: "too_many_requests", 503: "unavailable"}
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

# 400: unparseable body, 413: too large, 415: not JSON, 422: not valid.
BODY_ERRORS = (400, 413, 415, 422)
WRITE_ERRORS = (401, 403, 500, 503, 507)  # 500: the write failed (logged), 503: no usable index, 507: disk full


def error_responses(*codes: int) -> dict:
    """The error statuses a route can answer with, all in the one error shape (for OpenAPI)."""
    return {code: {"model": ErrorResponse} for code in codes}


def error_response(status: int, code: str, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def _describe_validation(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
        parts.append(f"{where}: {error.get('msg')}" if where else str(error.get("msg")))
    return "; ".join(parts) or "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(QAError)
    async def qa_error(request: Request, exc: QAError):
        for kind, status, code in _STATUS:
            if isinstance(exc, kind):
                if isinstance(exc, IndexWriteFailed):  # the operator has something to fix
                    log.error("%s %s: %s", request.method, request.url.path, exc)
                return error_response(status, code, str(exc))
        return error_response(400, "bad_request", str(exc))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        return error_response(422, "invalid_input", _describe_validation(exc))

    @app.exception_handler(405)
    async def method_not_allowed(request: Request, exc: HTTPException):
        # Starlette's Allow names only the first route on the path (GET /api/documents/{id} hides DELETE).
        allowed = [method for method in _METHODS if any(
            not isinstance(route, Mount) and route.matches({**request.scope, "method": method})[0] == Match.FULL
            for route in request.app.router.routes)]
        headers = {"Allow": ", ".join(allowed)} if allowed else exc.headers
        return error_response(405, "method_not_allowed", str(exc.detail), headers)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        code = _HTTP_CODES.get(exc.status_code, "error")
        return error_response(exc.status_code, code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", "internal server error")
