"""Request and response bodies of the HTTP API (the Answer itself comes from qa.answers)."""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AskFilters(_Strict):
    sources: list[str] = Field(default_factory=list, max_length=50)
    doc_ids: list[str] = Field(default_factory=list, max_length=200)
    since: date | None = None
    until: date | None = None


class AskRequest(_Strict):
    question: str = Field(description="a question in plain language")
    top_k: int | None = Field(None, ge=1, le=100)
    filters: AskFilters = Field(default_factory=AskFilters)


class DocumentIn(_Strict):
    id: str = Field(min_length=1, max_length=512)
    text: str
    title: str = ""
    source: str = ""
    url: str = ""
    published: str | None = Field(None, description="YYYY-MM-DD")
    metadata: dict[str, Any] = Field(default_factory=dict)


class DocumentsIn(_Strict):
    documents: list[DocumentIn] = Field(min_length=1)


class DocumentSummary(BaseModel):
    id: str
    title: str
    source: str
    url: str
    published: str | None
    characters: int


class DocumentPage(BaseModel):
    total: int
    offset: int
    limit: int
    documents: list[DocumentSummary]


class DocumentOut(BaseModel):
    id: str
    title: str
    source: str
    url: str
    published: str | None
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
