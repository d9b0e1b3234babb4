"""The FastAPI app factory: JSON API under /api, the chat page at /, metrics at /metrics."""

from __future__ import annotations

import time
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from starlette.concurrency import run_in_threadpool

from qa.errors import BackendUnavailable, IndexMissing
from qa.pipeline import Pipeline
from qa.settings import Settings

from .errors import install_error_handlers
from .metrics import Metrics
from .middleware import GuardMiddleware
from .routes import ask, documents, health, pages
from .schemas import bounded_request_models


def create_app(settings: Settings, pipeline: Pipeline | None = None) -> FastAPI:
    """An app serving ``pipeline`` (by default one built from ``settings``); ``settings`` also
    give the HTTP limits, the writer key, read-only mode and CORS."""
    app = FastAPI(title="Extractive QA", version="0.1.0", lifespan=_lifespan, docs_url=None, redoc_url=None)
    app.state.settings = settings
    app.state.pipeline = pipeline or Pipeline(settings)
    app.state.metrics = Metrics()
    install_error_handlers(app)

    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins,
                           allow_methods=["GET", "POST", "DELETE"], allow_headers=["content-type", "x-api-key"])
    app.add_middleware(GuardMiddleware, max_body_bytes=settings.max_body_bytes)
    app.middleware("http")(_measure)

    ask_request, documents_in = bounded_request_models(
        max_question_chars=settings.max_question_chars,
        max_documents_per_request=settings.max_documents_per_request)
    app.include_router(ask.router(ask_request))
    app.include_router(documents.router(documents_in))
    app.include_router(health.router)
    app.include_router(pages.router)
    pages.mount_files(app)
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI):
    # Load both models and open the index before the first request, not during it.
    await run_in_threadpool(_warm_up, app.state.pipeline)
    yield


def _warm_up(pipeline: Pipeline) -> None:
    pipeline.warm_up()
    try:
        pipeline.manifest()  # opens the index
    except (IndexMissing, BackendUnavailable):
        pass  # /api/ready says so until an index exists and its backend answers


async def _measure(request: Request, call_next):
    started = time.perf_counter()
    response = await call_next(request)
    route = request.scope.get("route")
    path = getattr(route, "path", "unmatched")
    metrics: Metrics = request.app.state.metrics
    metrics.requests.labels(path, request.method, str(response.status_code)).inc()
    metrics.latency.labels(path).observe(time.perf_counter() - started)
    return response
