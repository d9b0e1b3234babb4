"""The read side of an index in Milvus: the pipeline's SearchBackend, and the stored text it cites.

A backend serves one committed generation: every query and search it makes is limited to the rows
that generation sees (``Commit.visible``), so rows a writer has written and not yet committed, rows
a killed writer left behind, and rows a commit superseded and has not yet deleted never reach it.
"""

from __future__ import annotations

from datetime import date
from typing import Sequence

import numpy as np

from ...documents import Document
from ...errors import UnknownDocument
from ..generations import CommittedIndex
from ..protocol import Candidates, Filters, Signal, StoredChunk
from . import search
from .collections import Collections
from .connection import Milvus
from .expressions import day_of, is_in, matching
from .manifests import Commit, and_

_HEADER_FIELDS = ["doc_id", "title", "source", "url", "day", "metadata"]
_CHUNK_FIELDS = ["id", "doc_id", "start", "end", "text"]


class MilvusBackend(CommittedIndex):
    """One committed generation of an index in Milvus, as its ``Commit`` describes it.

    Holds no state of its own but the manifest: any number of processes can serve one Milvus.
    """

    def __init__(self, milvus: Milvus, names: Collections, commit: Commit):
        self.milvus = milvus
        self.names = names
        self.commit = commit
        self.manifest = commit.manifest
        self.visible = commit.visible()

    def see(self, commit: Commit) -> None:
        """Serve ``commit``, the same generation with its dead rows deleted: a shorter filter."""
        if commit.generation == self.commit.generation and not commit.garbage:
            self.commit, self.visible = commit, commit.visible()

    def where(self, *clauses: str) -> str:
        """The rows of this generation that match every clause."""
        return and_(self.visible, *clauses)

    def candidates(self, question: str, query: np.ndarray | None, n: int, filters: Filters,
                   signals: Sequence[Signal]) -> Candidates:
        return search.candidates(self, question, query, n, filters, signals)

    def chunks(self, chunk_ids: Sequence[int]) -> list[StoredChunk]:
        if not chunk_ids:
            return []
        rows = self.milvus.query(self.names.chunks, filter=self.where(is_in("id", chunk_ids)),
                                 output_fields=_CHUNK_FIELDS, limit=len(chunk_ids))
        by_id = {row["id"]: StoredChunk(*(row[f] for f in _CHUNK_FIELDS)) for row in rows}
        return [by_id[int(i)] for i in chunk_ids if int(i) in by_id]

    def document(self, doc_id: str) -> Document:
        found = self.documents([doc_id])
        if doc_id not in found:
            raise UnknownDocument(f"no document with id {doc_id!r}")
        return found[doc_id]

    def documents(self, doc_ids: Sequence[str], *, with_text: bool = True) -> dict[str, Document]:
        """The documents by id; ``with_text=False`` leaves their text empty (metadata only)."""
        if not doc_ids:
            return {}
        rows = self.milvus.query(self.names.documents, filter=self.where(is_in("doc_id", doc_ids)),
                                 output_fields=[*_HEADER_FIELDS, "parts"], limit=len(doc_ids))
        texts = self._texts(rows) if with_text else {}
        return {row["doc_id"]: Document(
            id=row["doc_id"], title=row["title"], text=texts.get(row["doc_id"], ""), source=row["source"],
            url=row["url"], published=day_of(row["day"]), metadata=row["metadata"]) for row in rows}

    def _texts(self, documents: list[dict]) -> dict[str, str]:
        parts = sum(row["parts"] for row in documents)
        if not parts:
            return {}
        doc_ids = [row["doc_id"] for row in documents]
        rows = self.milvus.query(self.names.texts, filter=self.where(is_in("doc_id", doc_ids)),
                                 output_fields=["doc_id", "part", "text"], limit=parts)
        texts: dict[str, list[str]] = {}
        for row in sorted(rows, key=lambda r: r["part"]):
            texts.setdefault(row["doc_id"], []).append(row["text"])
        return {doc_id: "".join(pieces) for doc_id, pieces in texts.items()}

    def story_copies(self, story_ids: Sequence[str]) -> dict[str, list[str]]:
        copies: dict[str, list[str]] = {}
        if story_ids:
            for row in self.milvus.rows(self.names.documents, self.where(is_in("story", story_ids)),
                                        ["doc_id", "story"]):
                copies.setdefault(row["story"], []).append(row["doc_id"])
        return {story: sorted(doc_ids) for story, doc_ids in copies.items()}

    def list_documents(self, *, offset: int = 0, limit: int = 50, sources: Sequence[str] = (),
                       since: str | None = None, until: str | None = None) -> tuple[int, list[dict]]:
        """Newest first, then by id, as the local backend lists them. Milvus does not sort a
        query: the day and id of every matching document come back, to sort them here."""
        where = self.where(matching(Filters(
            sources=tuple(sources), since=date.fromisoformat(since) if since else None,
            until=date.fromisoformat(until) if until else None)))
        keys = sorted(((-row["day"], row["doc_id"]) for row in
                       self.milvus.rows(self.names.documents, where, ["doc_id", "day"])))
        page = [doc_id for _, doc_id in keys[offset:offset + limit]]
        rows = {row["doc_id"]: row for row in self.milvus.query(
            self.names.documents, filter=self.where(is_in("doc_id", page)),
            output_fields=[*_HEADER_FIELDS, "characters"], limit=len(page))} if page else {}
        listed = [{"id": doc_id, "title": rows[doc_id]["title"], "source": rows[doc_id]["source"],
                   "url": rows[doc_id]["url"], "published": _iso(day_of(rows[doc_id]["day"])),
                   "characters": rows[doc_id]["characters"]} for doc_id in page if doc_id in rows]
        return len(keys), listed

    def document_hashes(self) -> dict[str, str]:
        return {row["doc_id"]: row["content_hash"]
                for row in self.milvus.rows(self.names.documents, self.visible, ["doc_id", "content_hash"])}


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day else None
