"""Request and response bodies of the HTTP API (the Answer itself comes from qa.answers)."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model

# "Not blank": at least one character that is not white space as Python's str.split() sees it
# (JSON Schema patterns search; its \s differs, e.g. on \x1c-\x1f and \ufeff). Only stated in the
# schema; qa enforces it, with its own messages, for the CLI and the API alike.
NOT_BLANK = {"pattern": r"[^\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f"
                       r"\u205f\u3000]"}


def _iso_date(value: Any) -> Any:
    # Only YYYY-MM-DD strings: pydantic alone would also take 0 or "0" (a Unix time) or "20230901".
    if isinstance(value, str):
        if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
            raise ValueError("not a YYYY-MM-DD date")
        return date.fromisoformat(value)
    return value


IsoDate = Annotated[date, BeforeValidator(_iso_date)]


def _whole_number(value: Any) -> Any:
    # JSON Schema counts 3.0 as an integer; strict mode alone would refuse it.
    return int(value) if isinstance(value, float) and value.is_integer() else value


class _Strict(BaseModel):
    # No unknown fields and no type coercion ("3" is not an integer, 0 is not a date): what the
    # OpenAPI schema says is exactly what is accepted.
    model_config = ConfigDict(extra="forbid", strict=True)


class AskFilters(_Strict):
    sources: list[str] = Field(default_factory=list, max_length=50)
    doc_ids: list[str] = Field(default_factory=list, max_length=200)
    since: IsoDate | None = Field(None, description="published on or after; not after `until`")
    until: IsoDate | None = None


class AskRequest(_Strict):
    question: str = Field(min_length=1, json_schema_extra=NOT_BLANK, description="a question in plain language")
    top_k: Annotated[int, Field(ge=1, le=100), BeforeValidator(_whole_number)] | None = None
    filters: AskFilters = Field(default_factory=AskFilters)
    prefer_recent: bool | None = Field(None, description=(
        "rank newer documents up for this question; default: the server's setting, which does so "
        "only for questions asking for the latest"))


class DocumentIn(_Strict):
    id: str = Field(min_length=1, max_length=512, json_schema_extra=NOT_BLANK)
    text: str = Field(min_length=1, json_schema_extra=NOT_BLANK)
    title: str = ""
    source: str = ""
    url: str = ""
    published: IsoDate | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class DocumentsIn(_Strict):
    documents: list[DocumentIn] = Field(min_length=1, description="ids must be unique within a request")


def bounded_request_models(*, max_question_chars: int, max_documents_per_request: int
                           ) -> tuple[type[AskRequest], type[DocumentsIn]]:
    """The request bodies with this server's limits in them, so the OpenAPI schema states them."""
    ask = create_model("AskRequest", __base__=AskRequest, question=(str, Field(
        min_length=1, max_length=max_question_chars, json_schema_extra=NOT_BLANK,
        description="a question in plain language")))
    documents = create_model("DocumentsIn", __base__=DocumentsIn, documents=(list[DocumentIn], Field(
        min_length=1, max_length=max_documents_per_request,
        description="ids must be unique within a request")))
    return ask, documents


class DocumentHeader(BaseModel):
    id: str
    title: str
    source: str
    url: str
    published: str | None


class DocumentSummary(DocumentHeader):
    characters: int


class DocumentPage(BaseModel):
    total: int
    offset: int
    limit: int
    documents: list[DocumentSummary]


class DocumentOut(DocumentHeader):
    metadata: dict[str, Any]
    text: str


class WriteResult(BaseModel):
    added: int
    updated: int
    unchanged: int
    removed: int
    generation: int | None


class Status(BaseModel):
    status: str
    documents: int | None = None
    chunks: int | None = None
    generation: int | None = None


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody
