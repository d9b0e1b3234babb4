"""The FastAPI app factory: JSON API under /api, the chat page at /, metrics at /metrics."""

from __future__ import annotations

import hmac
import time
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
import swagger_ui_bundle
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from qa.answers import Answer
from qa.errors import DocumentError, IndexMissing, InvalidInput
from qa.indexing import write_documents
from qa.loaders import document_from_record
from qa.pipeline import Pipeline
from qa.retrieval import Filters
from qa.settings import Settings

from .errors import install_error_handlers
from .metrics import Metrics
from .middleware import GuardMiddleware
from .schemas import (AskRequest, DocumentOut, DocumentPage, DocumentsIn, ErrorResponse, Status,
                      WriteResult)

STATIC = Path(__file__).parent / "static"
_ERRORS = {code: {"model": ErrorResponse} for code in (401, 403, 404, 413, 415, 422, 503)}


def create_app(settings: Settings, pipeline: Pipeline | None = None) -> FastAPI:
    pipeline = pipeline or Pipeline(settings)
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # Load both models and open the index before the first request, not during it.
        await run_in_threadpool(_warm_up, pipeline)
        yield

    app = FastAPI(title="Extractive QA", version="0.1.0", lifespan=lifespan, responses=_ERRORS,
                  docs_url=None, redoc_url=None)
    app.state.pipeline = pipeline
    app.state.metrics = metrics
    install_error_handlers(app)
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

    def require_writer(x_api_key: str | None = Header(None)) -> None:
        if settings.read_only:
            raise HTTPException(403, "this server is read-only")
        expected = settings.api_key.get_secret_value() if settings.api_key else None
        if expected and not hmac.compare_digest((x_api_key or "").encode(), expected.encode()):
            raise HTTPException(401, "a valid X-API-Key header is required for writes")

    @app.post("/api/ask", response_model=Answer, tags=["questions"])
    def ask(body: AskRequest) -> Answer:
        f = body.filters
        filters = Filters(sources=tuple(f.sources), doc_ids=tuple(f.doc_ids), since=f.since, until=f.until)
        answer = pipeline.ask(body.question, top_k=body.top_k, filters=filters)
        metrics.answers.labels("abstained" if answer.abstained else "answered").inc()
        return answer

    @app.get("/api/documents", response_model=DocumentPage, tags=["documents"])
    def list_documents(offset: int = Query(0, ge=0), limit: int = Query(50, ge=1, le=500),
                       source: list[str] = Query(default_factory=list),
                       since: str | None = Query(None, pattern=r"^\d{4}-\d{2}-\d{2}$"),
                       until: str | None = Query(None, pattern=r"^\d{4}-\d{2}-\d{2}$")) -> DocumentPage:
        total, rows = pipeline.index.list_documents(offset=offset, limit=limit, sources=source,
                                                    since=since, until=until)
        return DocumentPage(total=total, offset=offset, limit=limit, documents=rows)

    @app.get("/api/documents/{doc_id:path}", response_model=DocumentOut, tags=["documents"])
    def get_document(doc_id: str) -> DocumentOut:
        doc = pipeline.index.document(doc_id)
        return DocumentOut(id=doc.id, title=doc.title, source=doc.source, url=doc.url,
                           published=doc.published_iso, metadata=doc.metadata, text=doc.text)

    @app.post("/api/documents", response_model=WriteResult, tags=["documents"],
              dependencies=[Depends(require_writer)])
    def add_documents(body: DocumentsIn) -> WriteResult:
        if len(body.documents) > settings.max_documents_per_request:
            raise InvalidInput(f"at most {settings.max_documents_per_request} documents per request")
        documents = []
        for number, item in enumerate(body.documents):
            try:
                documents.append(document_from_record(item.model_dump()))
            except DocumentError as exc:
                raise DocumentError(f"documents[{number}] ({item.id!r}): {exc}") from None
        if len({d.id for d in documents}) != len(documents):
            raise InvalidInput("document ids in one request must be unique")
        report = write_documents(documents, settings, pipeline.embedder)
        return _write_result(report)

    @app.delete("/api/documents/{doc_id:path}", response_model=WriteResult, tags=["documents"],
                dependencies=[Depends(require_writer)])
    def delete_document(doc_id: str) -> WriteResult:
        pipeline.index.document(doc_id)  # 404 when unknown
        report = write_documents([], settings, pipeline.embedder, delete_ids=[doc_id])
        return _write_result(report)

    @app.get("/api/health", response_model=Status, response_model_exclude_none=True, tags=["service"])
    def health() -> Status:
        return Status(status="ok")

    @app.get("/api/ready", response_model=Status, tags=["service"], responses={503: {"model": ErrorResponse}})
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
