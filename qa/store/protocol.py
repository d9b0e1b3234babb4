"""The seam between the pipeline and where its candidates come from.

A backend stores documents (``DocumentWriter``) and, for a question, returns the chunks some
signal ranks among its best, each with every asked signal's score (``SearchBackend``). Fusing
those scores, reading and citing stay in the pipeline, the same whatever the backend, so that
answers can be compared backend to backend. The local backend (``IndexReader`` and
``IndexWriter``: SQLite, FAISS and BM25 in one folder) is the default; ``qa.store.milvus`` keeps
everything in Milvus.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal, Protocol, Sequence, runtime_checkable

import numpy as np

from ..chunking import Chunk
from ..documents import Document
from ..errors import InvalidInput

Signal = Literal["dense", "sentence", "lexical", "sentence_lexical"]
SIGNALS: tuple[Signal, ...] = ("dense", "sentence", "lexical", "sentence_lexical")


@dataclass(frozen=True)
class Filters:
    """Which documents a question may draw on; every backend applies the same fields."""
    sources: tuple[str, ...] = ()
    doc_ids: tuple[str, ...] = ()
    since: date | None = None
    until: date | None = None

    def __post_init__(self) -> None:
        if self.since and self.until and self.since > self.until:
            raise InvalidInput("filter 'since' is after 'until'")

    @property
    def active(self) -> bool:
        return bool(self.sources or self.doc_ids or self.since or self.until)


@dataclass(frozen=True)
class StoredChunk:
    id: int
    doc_id: str
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class IndexedSentence:
    """``chunks[chunk_index].text[start:end]`` of the IndexedDocument it belongs to."""
    chunk_index: int
    start: int
    end: int


@dataclass(frozen=True)
class IndexedDocument:
    """A document ready to be written: its chunks and sentences, one vector for each."""
    document: Document
    chunks: list[Chunk]
    vectors: np.ndarray
    sentences: list[IndexedSentence]
    sentence_vectors: np.ndarray


@dataclass(frozen=True)
class Candidates:
    """Chunks that some asked signal ranked among its ``n`` best, each scored by every asked signal.

    ``scores[signal][i]`` is chunk ``chunk_ids[i]``'s score; signals not asked for are absent.
    Chunks come in the order each signal found them (dense, lexical, sentence, sentence
    lexical; each best first), a chunk where it first appears. Each score is exact, but for
    "sentence": a chunk none of whose sentences came back among the best gets the score of
    the last sentence that did, the most its best sentence can score.
    """
    chunk_ids: list[int]
    scores: dict[Signal, np.ndarray]

    @classmethod
    def none(cls, signals: Sequence[Signal]) -> Candidates:
        return cls([], {signal: np.zeros(0) for signal in signals})


def indexed_text(title: str, chunk_text: str) -> str:
    """What BM25 and the embedder see of a chunk: its document's title gives it context."""
    return f"{title}\n{chunk_text}"


@runtime_checkable
class SearchBackend(Protocol):
    """The read side: candidates for a question, and the stored text the pipeline cites."""

    @property
    def chunk_count(self) -> int: ...

    @property
    def with_sentences(self) -> bool:
        """Whether sentence vectors are stored (the "sentence" signal exists)."""

    def candidates(self, question: str, query: np.ndarray | None, n: int, filters: Filters,
                   signals: Sequence[Signal]) -> Candidates:
        """Up to ``n`` chunks per signal in ``signals``; ``query`` is the question's unit vector
        (None when no vector signal is asked for)."""

    def chunks(self, chunk_ids: Sequence[int]) -> list[StoredChunk]:
        """The chunks in the order asked for; unknown ids are left out."""

    def documents(self, doc_ids: Sequence[str], *, with_text: bool = True) -> dict[str, Document]: ...

    def story_copies(self, story_ids: Sequence[str]) -> dict[str, list[str]]:
        """Story id -> the ids of its documents (near-duplicate copies, see qa.duplicates)."""


@runtime_checkable
class DocumentWriter(Protocol):
    """The write side: documents upserted and deleted whole; nothing is visible before ``commit``."""

    def document_hashes(self, doc_ids: Sequence[str] | None = None) -> dict[str, str]:
        """Document id -> ``Document.content_hash`` of what is stored: of ``doc_ids`` when given
        (a write of a few documents to a large index asks for theirs alone), else of all."""

    def upsert(self, item: IndexedDocument) -> None: ...

    def delete(self, doc_ids: Sequence[str]) -> None: ...

    def commit(self) -> object: ...
