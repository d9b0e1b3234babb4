"""The write side of an index in Milvus: documents staged in memory, written at ``commit``.

Milvus has no transaction across collections. Staging keeps every change out of sight until the
commit, and the commit writes each document's rows in the order readers follow them (the document,
then its chunks, then their sentences; deletes the other way round), so that a reader never
meets a chunk without its document. A rebuild drops the collections at the commit, not before.
One writer at a time: nothing stops a second process from writing the same collections.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone
from typing import Sequence

from ...duplicates import STORY
from ..generations import IndexConfig, Manifest, check_compatible
from ..protocol import IndexedDocument, indexed_text
from .backend import MilvusBackend
from .collections import NO_VECTOR, NO_VECTOR_VALUE, TEXT_PART_CHARS, Collections, bm25_texts
from .connection import Milvus
from .expressions import day_number, is_in
from .manifests import SCHEMA_VERSION, read_manifest, write_manifest

_BATCH = 500  # rows (or deleted documents) per call, well under the server's message limit


class MilvusWriter:
    """A DocumentWriter over Milvus; use as a context manager, like ``IndexWriter``."""

    def __init__(self, milvus: Milvus, names: Collections, config: IndexConfig, *, rebuild: bool = False):
        self.milvus = milvus
        self.names = names
        self.config = config
        self.rebuild = rebuild
        self._upserts: dict[str, IndexedDocument] = {}
        self._deletes: set[str] = set()

    def __enter__(self) -> MilvusWriter:
        self._committed = read_manifest(self.milvus, self.names)
        if self._committed is not None and not self.rebuild:
            check_compatible(self._committed, self.config)
        self.previous = self._committed.generation if self._committed else None
        return self

    def __exit__(self, *exc) -> None:
        self._forget_staged()  # not committed: nothing of this writer is written

    def _forget_staged(self) -> None:
        self._upserts.clear()
        self._deletes.clear()

    def document_hashes(self) -> dict[str, str]:
        stored = {} if self.rebuild or self._committed is None else MilvusBackend(
            self.milvus, self.names, self._committed).document_hashes()
        for doc_id in self._deletes:
            stored.pop(doc_id, None)
        return stored | {doc_id: item.document.content_hash for doc_id, item in self._upserts.items()}

    def delete(self, doc_ids: Sequence[str]) -> None:
        for doc_id in doc_ids:
            self._upserts.pop(doc_id, None)
            self._deletes.add(doc_id)

    def upsert(self, item: IndexedDocument) -> None:
        if len(item.chunks) != len(item.vectors) or len(item.sentences) != len(item.sentence_vectors):
            raise ValueError("one vector per chunk and per sentence is required")
        self._deletes.add(item.document.id)  # its earlier rows, if any
        self._upserts[item.document.id] = item

    def commit(self) -> Manifest:
        """Write what is staged, flush it (durable, and visible to every reader), then the manifest."""
        if self.rebuild:
            self.names.drop(self.milvus)
        self.names.create(self.milvus, self.config.dimension)
        if not self.rebuild:
            self._delete_rows(sorted(self._deletes))
        self._insert_rows(list(self._upserts.values()))
        for name in self.names.all():
            self.milvus.flush(name)
        manifest = self._manifest()
        write_manifest(self.milvus, self.names, manifest)
        self._committed, self.previous, self.rebuild = manifest, manifest.generation, False
        self._forget_staged()
        return manifest

    def _delete_rows(self, doc_ids: list[str]) -> None:
        for start in range(0, len(doc_ids), _BATCH):
            where = is_in("doc_id", doc_ids[start:start + _BATCH])
            for name in (self.names.sentences, self.names.chunks, self.names.texts, self.names.documents):
                self.milvus.delete(name, filter=where)

    def _insert_rows(self, items: list[IndexedDocument]) -> None:
        for start in range(0, len(items), _BATCH):
            batch = items[start:start + _BATCH]
            now = datetime.now(timezone.utc).isoformat(timespec="seconds")
            self._insert(self.names.documents, [_document_row(item, now) for item in batch])
            self._insert(self.names.texts, [row for item in batch for row in _text_rows(item)])
            chunk_ids = self._insert(self.names.chunks, [row for item in batch for row in _chunk_rows(item)])
            sentences = []
            for item in batch:
                ids, chunk_ids = chunk_ids[:len(item.chunks)], chunk_ids[len(item.chunks):]
                sentences += _sentence_rows(item, ids)
            self._insert(self.names.sentences, sentences)

    def _insert(self, collection: str, rows: list[dict]) -> list[int]:
        """The ids Milvus gave the rows, in their order."""
        ids: list[int] = []
        for start in range(0, len(rows), _BATCH):
            ids += self.milvus.insert(collection, rows[start:start + _BATCH])["ids"]
        return ids

    def _manifest(self) -> Manifest:
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        counts = {name: self.milvus.query(name, filter="", output_fields=["count(*)"])[0]["count(*)"]
                  for name in (self.names.documents, self.names.chunks, self.names.sentences)}
        fresh = Manifest(format_version=SCHEMA_VERSION, model=self.config.model, dimension=self.config.dimension,
                         chunk_tokens=self.config.chunk_tokens, chunk_overlap=self.config.chunk_overlap,
                         documents=counts[self.names.documents], chunks=counts[self.names.chunks],
                         sentences=counts[self.names.sentences], generation=(self.previous or 0) + 1,
                         created_at=now, updated_at=now, sentence_vectors=self.config.sentence_vectors)
        return fresh if self.rebuild or self._committed is None else replace(
            fresh, created_at=self._committed.created_at)


def _filter_fields(item: IndexedDocument) -> dict:
    doc = item.document
    return {"doc_id": doc.id, "source": doc.source, "day": day_number(doc.published)}


def _document_row(item: IndexedDocument, now: str) -> dict:
    doc = item.document
    return {**_filter_fields(item), "title": doc.title, "url": doc.url, "metadata": doc.metadata,
            "story": str(doc.metadata.get(STORY) or ""), "content_hash": doc.content_hash, "indexed_at": now,
            "characters": len(doc.text), "parts": len(_parts(doc.text)), NO_VECTOR: NO_VECTOR_VALUE}


def _parts(text: str) -> list[str]:
    return [text[start:start + TEXT_PART_CHARS] for start in range(0, len(text), TEXT_PART_CHARS)]


def _text_rows(item: IndexedDocument) -> list[dict]:
    return [{"doc_id": item.document.id, "part": number, "text": part, NO_VECTOR: NO_VECTOR_VALUE}
            for number, part in enumerate(_parts(item.document.text))]


def _chunk_rows(item: IndexedDocument) -> list[dict]:
    fields = _filter_fields(item)
    words = bm25_texts([indexed_text(item.document.title, chunk.text) for chunk in item.chunks])
    return [{**fields, "ordinal": chunk.ordinal, "start": chunk.start, "end": chunk.end, "text": chunk.text,
             "indexed": indexed, "vector": vector.tolist()}
            for chunk, indexed, vector in zip(item.chunks, words, item.vectors)]


def _sentence_rows(item: IndexedDocument, chunk_ids: list[int]) -> list[dict]:
    fields = _filter_fields(item)
    return [{**fields, "chunk_id": chunk_ids[sentence.chunk_index], "vector": vector.tolist()}
            for sentence, vector in zip(item.sentences, item.sentence_vectors)]
