"""POST /api/ask: one question in, one cited Answer out."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from qa.answers import Answer
from qa.retrieval import Filters

from ..deps import MetricsDep, PipelineDep, require_json
from ..errors import BODY_ERRORS, error_responses
from ..schemas import AskRequest
from . import with_body


def ask(body: AskRequest, pipeline: PipelineDep, metrics: MetricsDep) -> Answer:
    f = body.filters
    filters = Filters(sources=tuple(f.sources), doc_ids=tuple(f.doc_ids), since=f.since, until=f.until)
    answer = pipeline.ask(body.question, top_k=body.top_k, filters=filters, prefer_recent=body.prefer_recent)
    metrics.answers.labels("abstained" if answer.abstained else "answered").inc()
    return answer


def router(ask_request: type[AskRequest]) -> APIRouter:
    """The route, its body bounded by ``ask_request``."""
    router = APIRouter(tags=["questions"])
    router.add_api_route("/api/ask", with_body(ask, ask_request), methods=["POST"], response_model=Answer,
                         responses=error_responses(*BODY_ERRORS, 503), dependencies=[Depends(require_json)])
    return router
