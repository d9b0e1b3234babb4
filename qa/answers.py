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


class ResolvedDate(_Frozen):
    """A relative date in a cited sentence ("on Friday"), resolved against the document's date."""
    text: str = Field(description="document.text[start:end]")
    start: int
    end: int
    date: str = Field(description="the day it names, YYYY-MM-DD")


class Citation(DocumentFields):
    start: int = Field(description="offset of the answer's first character in the document text")
    end: int = Field(description="offset just past the answer's last character")
    quote: str = Field(description="document.text[start:end]")
    sentence_start: int
    sentence_end: int
    sentence: str = Field(description="document.text[sentence_start:sentence_end]")
    page: int | None = Field(None, description="the PDF page (from 1) the answer starts on; "
                                               "null for documents without pages")
    story: str | None = Field(None, description="the near-duplicate story this document is a copy of, if any")
    dates: list[ResolvedDate] = Field(default_factory=list, description=(
        "relative dates of the sentence, resolved against the document's published date"))


class Candidate(_Frozen):
    text: str
    confidence: float = Field(ge=0.0, le=1.0)
    citations: list[Citation]
    sources: int = Field(1, description="independent sources citing it: copies of one story count once")
    published: str | None = Field(None, description="the newest published date among its citations")


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
    sources: int = Field(0, description="independent sources supporting the answer (copies of a story count once)")
    conflicts: list[Candidate] = Field(default_factory=list, description=(
        "credible different answers from other sources; with the answer, newest first when their dates differ"))
    alternatives: list[Candidate] = Field(
        description="other answers found; when abstaining, the best guess comes first")
    passages: list[Passage]
    timings_ms: dict[str, float]
