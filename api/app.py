"""The FastAPI app factory: JSON API under /api, the chat page at /, metrics at /metrics."""

# No `from __future__ import annotations` here: routes are annotated with request models built per
# app (local names), which FastAPI can only resolve when annotations are evaluated at definition.
import hmac
import time
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, Security
import swagger_ui_bundle
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.routing import APIRoute
from fastapi.security import APIKeyHeader
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.convertors import PathConvertor, register_url_convertor
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Mount

from qa.answers import Answer
from qa.errors import DocumentError, IndexMissing, InvalidInput
from qa.indexing import write_documents
from qa.loaders import document_from_record
from qa.pipeline import Pipeline
from qa.retrieval import Filters
from qa.settings import Settings

from .errors import error_response, install_error_handlers
from .metrics import Metrics
from .middleware import GuardMiddleware
from .schemas import (DocumentOut, DocumentPage, ErrorResponse, IsoDate, Status, WriteResult,
                      bounded_request_models)

STATIC = Path(__file__).parent / "static"
_API_KEY = APIKeyHeader(name="X-API-Key", auto_error=False, scheme_name="writer key",
                        description="needed for writes when the server has QA_API_KEY set")
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_MAX_OFFSET = 1_000_000_000  # SQLite takes 64-bit offsets; far past any real index anyway


class _AnyPath(PathConvertor):
    regex = "(?s:.*)"  # Starlette's ":path" stops at a newline: an id with one could not be read or deleted


register_url_convertor("anypath", _AnyPath())


def _errors(*codes: int) -> dict:
    """The error statuses a route can answer with, all in the one error shape."""
    return {code: {"model": ErrorResponse} for code in codes}


# 400: unparseable body, 413: too large, 415: not JSON, 422: not valid, 503: no usable index.
_BODY_ERRORS = (400, 413, 415, 422)
_WRITE_ERRORS = (401, 403, 500, 503, 507)  # 500: the write failed (logged), 507: disk full


def create_app(settings: Settings, pipeline: Pipeline | None = None) -> FastAPI:
    pipeline = pipeline or Pipeline(settings)
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # Load both models and open the index before the first request, not during it.
        await run_in_threadpool(_warm_up, pipeline)
        yield

    app = FastAPI(title="Extractive QA", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.pipeline = pipeline
    app.state.metrics = metrics
    install_error_handlers(app)

    @app.exception_handler(405)
    async def method_not_allowed(request: Request, exc: StarletteHTTPException):
        # Starlette's Allow names only the first route on the path (GET /api/documents/{id} hides DELETE).
        allowed = [method for method in _METHODS if any(
            not isinstance(route, Mount) and route.matches({**request.scope, "method": method})[0] == Match.FULL
            for route in app.router.routes)]
        headers = {"Allow": ", ".join(allowed)} if allowed else exc.headers
        return error_response(405, "method_not_allowed", str(exc.detail), headers)

    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins,
                           allow_methods=["GET", "POST", "DELETE"], allow_headers=["content-type", "x-api-key"])
    app.add_middleware(GuardMiddleware, max_body_bytes=settings.max_body_bytes)

    @app.middleware("http")
    async def measure(request: Request, call_next):
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        metrics.requests.labels(path, request.method, str(response.status_code)).inc()
        metrics.latency.labels(path).observe(time.perf_counter() - started)
        return response

    AskRequest, DocumentsIn = bounded_request_models(settings)

    def require_writer(request: Request) -> None:
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

    # Security(_API_KEY) only documents the header; WriterRoute enforces it.
    writer = APIRouter(route_class=WriterRoute, dependencies=[Security(_API_KEY)])

    @app.post("/api/ask", response_model=Answer, tags=["questions"], responses=_errors(*_BODY_ERRORS, 503),
              dependencies=[Depends(_require_json)])
    def ask(body: AskRequest) -> Answer:
        f = body.filters
        filters = Filters(sources=tuple(f.sources), doc_ids=tuple(f.doc_ids), since=f.since, until=f.until)
        answer = pipeline.ask(body.question, top_k=body.top_k, filters=filters)
        metrics.answers.labels("abstained" if answer.abstained else "answered").inc()
        return answer

    @app.get("/api/documents", response_model=DocumentPage, tags=["documents"], responses=_errors(422, 503))
    def list_documents(offset: int = Query(0, ge=0, le=_MAX_OFFSET), limit: int = Query(50, ge=1, le=500),
                       source: list[str] = Query(default_factory=list),
                       since: IsoDate | None = Query(None, description="published on or after"),
                       until: IsoDate | None = Query(None, description="published on or before")) -> DocumentPage:
        total, rows = pipeline.index.list_documents(
            offset=offset, limit=limit, sources=source, since=since.isoformat() if since else None,
            until=until.isoformat() if until else None)
        return DocumentPage(total=total, offset=offset, limit=limit, documents=rows)

    @app.get("/api/documents/{doc_id:anypath}", response_model=DocumentOut, tags=["documents"],
             responses=_errors(404, 503))
    def get_document(doc_id: str) -> DocumentOut:
        doc = pipeline.index.document(doc_id)
        return DocumentOut(id=doc.id, title=doc.title, source=doc.source, url=doc.url,
                           published=doc.published_iso, metadata=doc.metadata, text=doc.text)

    @writer.post("/api/documents", response_model=WriteResult, tags=["documents"],
                 responses=_errors(*_BODY_ERRORS, *_WRITE_ERRORS), dependencies=[Depends(_require_json)])
    def add_documents(body: DocumentsIn) -> WriteResult:
        documents = []
        for number, item in enumerate(body.documents):
            try:
                documents.append(document_from_record(item.model_dump(mode="json")))
            except DocumentError as exc:
                raise DocumentError(f"documents[{number}] ({item.id!r}): {exc}") from None
        if len({d.id for d in documents}) != len(documents):
            raise InvalidInput("document ids in one request must be unique")
        report = write_documents(documents, settings, pipeline.embedder)
        return _write_result(report)

    @writer.delete("/api/documents/{doc_id:anypath}", response_model=WriteResult, tags=["documents"],
                   responses=_errors(404, *_WRITE_ERRORS))
    def delete_document(doc_id: str) -> WriteResult:
        pipeline.index.document(doc_id)  # 404 when unknown
        report = write_documents([], settings, pipeline.embedder, delete_ids=[doc_id])
        return _write_result(report)

    app.include_router(writer)

    @app.get("/api/health", response_model=Status, response_model_exclude_none=True, tags=["service"])
    def health() -> Status:
        return Status(status="ok")

    @app.get("/api/ready", response_model=Status, tags=["service"], responses=_errors(503))
    def ready() -> Status:
        try:
            index = pipeline.index
        except IndexMissing:
            raise HTTPException(503, "no index is open yet") from None
        m = index.manifest
        return Status(status="ready", documents=m.documents, chunks=m.chunks, generation=m.generation)

    @app.get("/metrics", include_in_schema=False)
    def prometheus() -> Response:
        try:
            manifest = pipeline.index.manifest
            metrics.index_documents.set(manifest.documents)
            metrics.index_chunks.set(manifest.chunks)
        except IndexMissing:
            pass
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        # Swagger UI's files come from the swagger-ui-bundle package: the docs work offline.
        return get_swagger_ui_html(openapi_url="/openapi.json", title="Extractive QA: API docs",
                                   swagger_js_url="/docs-assets/swagger-ui-bundle.js",
                                   swagger_css_url="/docs-assets/swagger-ui.css",
                                   swagger_favicon_url="/docs-assets/favicon-32x32.png")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.mount("/docs-assets", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="docs-assets")
    return app


def _require_json(request: Request) -> None:
    # After routing, so a wrong method or path still gets its 405 or 404.
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise HTTPException(415, "request body must be JSON (Content-Type: application/json)")


def _warm_up(pipeline: Pipeline) -> None:
    pipeline.warm_up()
    try:
        pipeline.index
    except IndexMissing:
        pass  # /api/ready says so until an index exists


def _write_result(report) -> WriteResult:
    return WriteResult(added=report.added, updated=report.updated, unchanged=report.unchanged,
                       removed=report.removed,
                       generation=report.manifest.generation if report.manifest else None)
