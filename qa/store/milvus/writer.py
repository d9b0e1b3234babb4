"""The write side of an index in Milvus: documents staged in memory, written at ``commit``.

Milvus has no transaction across collections; a commit is atomic all the same, by generations
(see ``manifests.Commit``). Every row a commit writes carries its generation G+1, above the
committed G, so readers do not see it. The order, each step flushed before the next:

1. at open, under the writer lease (``lease``): delete the rows above G (a killed writer's
   leftovers) and the rows G's manifest lists as dead (a killed writer's unfinished garbage);
2. insert the new rows, tagged G+1;
3. write the manifest of G+1, which names the documents it replaced or deleted: readers of
   G+1 leave out their rows older than G+1. This one row is the commit point;
4. delete those superseded rows (a rebuild's: every row older than G+1), then write the manifest
   again, without them.

Killed before 3, the index is G, and the next writer's step 1 deletes what was written; killed
after 3, it is G+1, whole, and the next writer finishes step 4. A reader never sees a document
twice or with another version's chunks; only one that read G's manifest before step 3 and still
queries during step 4 can find a replaced document missing. Until step 4 ends, the superseded rows
still count in BM25's statistics.

A rebuild keeps the collections when their schema and dimension fit (atomic as above); otherwise
it drops them at the commit, not before, and readers find no index until it is written. Taking
the lease costs each writer ``lease.SETTLE_S`` (half a second); a writer that lost it (paused past
its expiry) stops before its next write to Milvus.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone
from typing import Sequence

from ...duplicates import STORY
from ...errors import BackendUnavailable, IndexBusy, IndexMismatch
from ..generations import IndexConfig, Manifest, check_compatible
from ..protocol import IndexedDocument, indexed_text
from .backend import MilvusBackend
from .collections import GENERATION, NO_VECTOR, NO_VECTOR_VALUE, TEXT_PART_CHARS, Collections, bm25_texts
from .connection import Milvus
from .expressions import day_number, is_in
from .lease import WriterLease
from .manifests import SCHEMA_VERSION, Commit, and_, forget_commit, read_commit, write_commit

_BATCH = 500  # rows (or deleted documents) per call, well under the server's message limit


class MilvusWriter:
    """A DocumentWriter over Milvus; use as a context manager, like ``IndexWriter``: it holds the
    index's writer lease from ``__enter__`` to ``__exit__``."""

    def __init__(self, milvus: Milvus, names: Collections, config: IndexConfig, *, rebuild: bool = False):
        self.milvus = milvus
        self.names = names
        self.config = config
        self.rebuild = rebuild
        self.lease = WriterLease(milvus, names)
        self._upserts: dict[str, IndexedDocument] = {}
        self._deletes: set[str] = set()

    def __enter__(self) -> MilvusWriter:
        self.names.create_manifest(self.milvus)
        self.lease.acquire()
        try:
            self._open()
        except BaseException:
            self.lease.release()
            raise
        return self

    def _open(self) -> None:
        try:
            self._committed = read_commit(self.milvus, self.names)
        except IndexMismatch:
            if not self.rebuild:
                raise
            self._committed = None  # another schema: dropped at the commit
        # Nothing committed: whatever rows there are, no reader sees them; they go at the commit.
        self._drop = self._committed is None or (
            self.rebuild and self._committed.manifest.dimension != self.config.dimension)
        if self._committed is not None:
            if not self.rebuild:
                check_compatible(self._committed.manifest, self.config)
            self._recover(self._committed)
        self.previous = self._committed.generation if self._committed else None

    def __exit__(self, *exc) -> None:
        self._forget_staged()  # not committed: nothing of this writer is visible
        self.lease.release()

    def _forget_staged(self) -> None:
        self._upserts.clear()
        self._deletes.clear()

    def _recover(self, committed: Commit) -> None:
        """Delete what a killed writer left: rows above the committed generation, and the rows
        the committed manifest still lists as dead."""
        leftover = f"{GENERATION} > {committed.generation}"
        for name in self.names.data():
            if self.milvus.has_collection(name) and self._count(name, leftover):
                self.lease.check()
                self.milvus.delete(name, filter=leftover)
                self.milvus.flush(name)
        if committed.garbage:
            self._committed = self._collect(committed)

    def document_hashes(self, doc_ids: Sequence[str] | None = None) -> dict[str, str]:
        stored = {} if self.rebuild or self._committed is None else MilvusBackend(
            self.milvus, self.names, self._committed).document_hashes()
        for doc_id in self._deletes:
            stored.pop(doc_id, None)
        stored |= {doc_id: item.document.content_hash for doc_id, item in self._upserts.items()}
        return stored if doc_ids is None else {i: stored[i] for i in doc_ids if i in stored}

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
        """Write what is staged, invisible, then the manifest that shows it, then delete what it replaced."""
        if self._drop:
            self.lease.check()
            forget_commit(self.milvus, self.names)
            self.names.drop_data(self.milvus)
            self._committed, self._drop = None, False
        self.names.create(self.milvus, self.config.dimension)
        generation = (self.previous or 0) + 1
        items = list(self._upserts.values())
        self._insert_rows(items, generation)
        for name in self.names.data():
            self.milvus.flush(name)
        if self.rebuild and self._committed is not None:
            floor, gone = generation, []
        else:
            floor, gone = 0, self._stored(sorted(self._deletes))
        commit = Commit(self._manifest(generation, self._counts(gone, items)), floor=floor,
                        superseded=tuple(row["doc_id"] for row in gone))
        self.lease.check()
        write_commit(self.milvus, self.names, commit)  # the commit point
        self._committed, self.previous, self.rebuild = commit, generation, False
        self._forget_staged()
        try:
            self._committed = self._collect(commit)
        except (BackendUnavailable, IndexBusy):
            pass  # committed all the same: the next writer deletes what is left
        return commit.manifest

    def _stored(self, doc_ids: list[str]) -> list[dict]:
        """The rows of those of ``doc_ids`` that the committed generation holds (only they have
        older rows), by document id, with their numbers of chunks and sentences."""
        if self._committed is None:
            return []
        backend = MilvusBackend(self.milvus, self.names, self._committed)
        stored: list[dict] = []
        for start in range(0, len(doc_ids), _BATCH):
            where = backend.where(is_in("doc_id", doc_ids[start:start + _BATCH]))
            stored += self.milvus.rows(self.names.documents, where, ["doc_id", "chunks", "sentences"])
        return sorted(stored, key=lambda row: row["doc_id"])

    def _counts(self, gone: list[dict], items: list[IndexedDocument]) -> tuple[int, int, int]:
        """Documents, chunks and sentences the new generation sees: the committed numbers (none
        for a rebuild) less those of ``gone``, plus those of ``items`` (counting the rows instead
        scans every collection)."""
        kept = self._committed.manifest if self._committed is not None and not self.rebuild else None
        documents, chunks, sentences = (kept.documents, kept.chunks, kept.sentences) if kept else (0, 0, 0)
        return (documents - len(gone) + len(items),
                chunks - sum(row["chunks"] for row in gone) + sum(len(item.chunks) for item in items),
                sentences - sum(row["sentences"] for row in gone) + sum(len(item.sentences) for item in items))

    def _collect(self, commit: Commit) -> Commit:
        """Delete the rows that ``commit`` sees as dead, then write its manifest without them."""
        if not commit.garbage:
            return commit
        dead = []
        if commit.floor:
            dead.append(f"{GENERATION} < {commit.floor}")
        for start in range(0, len(commit.superseded), _BATCH):
            dead.append(and_(f"{GENERATION} < {commit.generation}",
                             is_in("doc_id", commit.superseded[start:start + _BATCH])))
        for name in reversed(self.names.data()):  # sentences first, documents last
            for where in dead:
                self.lease.check()
                self.milvus.delete(name, filter=where)
            self.milvus.flush(name)
        clean = Commit(commit.manifest)
        self.lease.check()
        write_commit(self.milvus, self.names, clean)
        return clean

    def _insert_rows(self, items: list[IndexedDocument], generation: int) -> None:
        for start in range(0, len(items), _BATCH):
            batch = items[start:start + _BATCH]
            now = datetime.now(timezone.utc).isoformat(timespec="seconds")
            self._insert(self.names.documents, [_document_row(item, generation, now) for item in batch])
            self._insert(self.names.texts, [row for item in batch for row in _text_rows(item, generation)])
            chunk_ids = self._insert(self.names.chunks,
                                     [row for item in batch for row in _chunk_rows(item, generation)])
            sentences = []
            for item in batch:
                ids, chunk_ids = chunk_ids[:len(item.chunks)], chunk_ids[len(item.chunks):]
                sentences += _sentence_rows(item, generation, ids)
            self._insert(self.names.sentences, sentences)

    def _insert(self, collection: str, rows: list[dict]) -> list[int]:
        """The ids Milvus gave the rows, in their order."""
        ids: list[int] = []
        for start in range(0, len(rows), _BATCH):
            self.lease.check()
            ids += self.milvus.insert(collection, rows[start:start + _BATCH])["ids"]
        return ids

    def _manifest(self, generation: int, counts: tuple[int, int, int]) -> Manifest:
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        documents, chunks, sentences = counts
        fresh = Manifest(format_version=SCHEMA_VERSION, model=self.config.model, dimension=self.config.dimension,
                         chunk_tokens=self.config.chunk_tokens, chunk_overlap=self.config.chunk_overlap,
                         documents=documents, chunks=chunks, sentences=sentences, generation=generation,
                         created_at=now, updated_at=now, sentence_vectors=self.config.sentence_vectors)
        return fresh if self.rebuild or self._committed is None else replace(
            fresh, created_at=self._committed.manifest.created_at)

    def _count(self, collection: str, where: str) -> int:
        return self.milvus.query(collection, filter=where, output_fields=["count(*)"])[0]["count(*)"]


def _filter_fields(item: IndexedDocument, generation: int) -> dict:
    doc = item.document
    return {"doc_id": doc.id, "source": doc.source, "day": day_number(doc.published), GENERATION: generation}


def _document_row(item: IndexedDocument, generation: int, now: str) -> dict:
    doc = item.document
    return {**_filter_fields(item, generation), "title": doc.title, "url": doc.url, "metadata": doc.metadata,
            "story": str(doc.metadata.get(STORY) or ""), "content_hash": doc.content_hash, "indexed_at": now,
            "characters": len(doc.text), "parts": len(_parts(doc.text)), "chunks": len(item.chunks),
            "sentences": len(item.sentences), NO_VECTOR: NO_VECTOR_VALUE}


def _parts(text: str) -> list[str]:
    return [text[start:start + TEXT_PART_CHARS] for start in range(0, len(text), TEXT_PART_CHARS)]


def _text_rows(item: IndexedDocument, generation: int) -> list[dict]:
    return [{"doc_id": item.document.id, GENERATION: generation, "part": number, "text": part,
             NO_VECTOR: NO_VECTOR_VALUE} for number, part in enumerate(_parts(item.document.text))]


def _chunk_rows(item: IndexedDocument, generation: int) -> list[dict]:
    fields = _filter_fields(item, generation)
    words = bm25_texts([indexed_text(item.document.title, chunk.text) for chunk in item.chunks])
    return [{**fields, "ordinal": chunk.ordinal, "start": chunk.start, "end": chunk.end, "text": chunk.text,
             "indexed": indexed, "vector": vector.tolist()}
            for chunk, indexed, vector in zip(item.chunks, words, item.vectors)]


def _sentence_rows(item: IndexedDocument, generation: int, chunk_ids: list[int]) -> list[dict]:
    fields = _filter_fields(item, generation)
    return [{**fields, "chunk_id": chunk_ids[sentence.chunk_index], "vector": vector.tolist()}
            for sentence, vector in zip(item.sentences, item.sentence_vectors)]
