"""What routes get from their app: its pipeline, settings and metrics; JSON and writer checks."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Response
from fastapi.routing import APIRoute
from fastapi.security import APIKeyHeader

from qa.pipeline import Pipeline
from qa.settings import Settings

from .metrics import Metrics

# Security(writer_key) only documents the header in the OpenAPI schema; WriterRoute enforces it.
writer_key = APIKeyHeader(name="X-API-Key", auto_error=False, scheme_name="writer key",
                          description="needed for writes when the server has QA_API_KEY set")


def get_pipeline(request: Request) -> Pipeline:
    return request.app.state.pipeline


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


PipelineDep = Annotated[Pipeline, Depends(get_pipeline)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]


def require_json(request: Request) -> None:
    # A dependency, so it runs after routing: a wrong method or path still gets its 405 or 404.
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise HTTPException(415, "request body must be JSON (Content-Type: application/json)")


def require_writer(request: Request) -> None:
    """403 on a read-only server; 401 unless the X-API-Key header matches QA_API_KEY (when set)."""
    settings = get_settings(request)
    if settings.read_only:
        raise HTTPException(403, "this server is read-only")
    expected = settings.api_key.get_secret_value() if settings.api_key else None
    given = request.headers.get("x-api-key", "")
    if expected and not hmac.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(401, "a valid X-API-Key header is required for writes")


class WriterRoute(APIRoute):
    """Checks the writer before FastAPI reads and parses the body (dependencies run after that),
    so a client without the key learns nothing about its body and cannot make the server parse it."""

    def get_route_handler(self):
        handle = super().get_route_handler()

        async def handle_writer(request: Request) -> Response:
            require_writer(request)
            return await handle(request)

        return handle_writer
