"""What a question gets back. The same objects are the API's JSON and what the page renders."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from .documents import Document


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class DocumentFields(_Frozen):
    """The document a citation or passage comes from: who published it, where and when."""
    doc_id: str
    title: str
    source: str
    url: str
    published: str | None

    @staticmethod
    def of(doc: Document) -> dict:
        return {"doc_id": doc.id, "title": doc.title, "source": doc.source, "url": doc.url,
                "published": doc.published_iso}


class Citation(DocumentFields):
    start: int = Field(description="offset of the answer's first character in the document text")
    end: int = Field(description="offset just past the answer's last character")
    quote: str = Field(description="document.text[start:end]")
    sentence_start: int
    sentence_end: int
    sentence: str = Field(description="document.text[sentence_start:sentence_end]")
    page: int | None = Field(None, description="the PDF page (from 1) the answer starts on; "
                                               "null for documents without pages")


class Candidate(_Frozen):
    text: str
    confidence: float = Field(ge=0.0, le=1.0)
    citations: list[Citation]


class Passage(DocumentFields):
    chunk_id: int
    start: int
    end: int
    text: str
    score: float = Field(description="fused retrieval score; the passages the reader read are ordered "
                                     "by this plus its best confidence in each")


class Answer(_Frozen):
    question: str
    text: str | None = Field(description="the answer, a span of source text; null when abstaining")
    confidence: float = Field(ge=0.0, le=1.0, description="estimated probability the best answer is right")
    abstained: bool
    message: str
    citations: list[Citation]
    alternatives: list[Candidate] = Field(
        description="other answers found; when abstaining, the best guess comes first")
    passages: list[Passage]
    timings_ms: dict[str, float]
