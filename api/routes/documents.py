"""/api/documents: list and read documents; add, replace and delete them (writers only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Security
from starlette.convertors import PathConvertor, register_url_convertor

from qa.errors import DocumentError
from qa.indexing import IndexReport
from qa.loaders import document_from_record

from ..deps import PipelineDep, WriterRoute, require_json, writer_key
from ..errors import BODY_ERRORS, WRITE_ERRORS, error_responses
from ..schemas import DocumentOut, DocumentPage, DocumentsIn, IsoDate, WriteResult
from . import with_body

_MAX_OFFSET = 1_000_000_000  # SQLite takes 64-bit offsets; far past any real index anyway


class _AnyPath(PathConvertor):
    regex = "(?s:.*)"  # Starlette's ":path" stops at a newline: an id with one could not be read or deleted


register_url_convertor("anypath", _AnyPath())

reads = APIRouter(tags=["documents"])


@reads.get("/api/documents", response_model=DocumentPage, responses=error_responses(422, 503))
def list_documents(pipeline: PipelineDep, *, offset: Annotated[int, Query(ge=0, le=_MAX_OFFSET)] = 0,
                   limit: Annotated[int, Query(ge=1, le=500)] = 50,
                   source: Annotated[list[str], Query(default_factory=list)],
                   since: Annotated[IsoDate | None, Query(description="published on or after")] = None,
                   until: Annotated[IsoDate | None, Query(description="published on or before")] = None,
                   ) -> DocumentPage:
    total, rows = pipeline.list_documents(offset=offset, limit=limit, sources=source, since=since, until=until)
    return DocumentPage(total=total, offset=offset, limit=limit, documents=rows)


@reads.get("/api/documents/{doc_id:anypath}", response_model=DocumentOut, responses=error_responses(404, 503))
def get_document(doc_id: str, pipeline: PipelineDep) -> DocumentOut:
    doc = pipeline.document(doc_id)
    return DocumentOut(id=doc.id, title=doc.title, source=doc.source, url=doc.url,
                       published=doc.published_iso, metadata=doc.metadata, text=doc.text)


def add_documents(body: DocumentsIn, pipeline: PipelineDep) -> WriteResult:
    documents = []
    for number, item in enumerate(body.documents):
        try:
            documents.append(document_from_record(item.model_dump(mode="json")))
        except DocumentError as exc:
            raise DocumentError(f"documents[{number}] ({item.id!r}): {exc}") from None
    return _write_result(pipeline.add(documents))


def delete_document(doc_id: str, pipeline: PipelineDep) -> WriteResult:
    return _write_result(pipeline.delete([doc_id]))


def router(documents_in: type[DocumentsIn]) -> APIRouter:
    """All the routes, the body of a write bounded by ``documents_in``."""
    # Security(writer_key) documents the header; WriterRoute enforces it.
    writes = APIRouter(tags=["documents"], route_class=WriterRoute, dependencies=[Security(writer_key)])
    writes.add_api_route("/api/documents", with_body(add_documents, documents_in), methods=["POST"],
                         response_model=WriteResult, responses=error_responses(*BODY_ERRORS, *WRITE_ERRORS),
                         dependencies=[Depends(require_json)])
    writes.add_api_route("/api/documents/{doc_id:anypath}", delete_document, methods=["DELETE"],
                         response_model=WriteResult, responses=error_responses(404, *WRITE_ERRORS))
    router = APIRouter()
    router.include_router(reads)
    router.include_router(writes)
    return router


def _write_result(report: IndexReport) -> WriteResult:
    return WriteResult(added=report.added, updated=report.updated, unchanged=report.unchanged,
                       removed=report.removed,
                       generation=report.manifest.generation if report.manifest else None)
