"""Liveness (/api/health), readiness (/api/ready) and Prometheus metrics (/metrics)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from qa.errors import IndexMissing

from ..deps import MetricsDep, PipelineDep
from ..errors import error_responses
from ..schemas import Status

router = APIRouter(tags=["service"])


@router.get("/api/health", response_model=Status, response_model_exclude_none=True)
def health() -> Status:
    return Status(status="ok")


@router.get("/api/ready", response_model=Status, responses=error_responses(503))
def ready(pipeline: PipelineDep) -> Status:
    try:
        m = pipeline.manifest()
    except IndexMissing:
        raise HTTPException(503, "no index is open yet") from None
    return Status(status="ready", documents=m.documents, chunks=m.chunks, generation=m.generation)


@router.get("/metrics", include_in_schema=False)
def prometheus(pipeline: PipelineDep, metrics: MetricsDep) -> Response:
    try:
        manifest = pipeline.manifest()
        metrics.index_documents.set(manifest.documents)
        metrics.index_chunks.set(manifest.chunks)
    except IndexMissing:
        pass
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
