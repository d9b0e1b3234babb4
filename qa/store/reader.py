"""The read side of the local index: one committed generation, opened read-only."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Sequence

import numpy as np

from ..documents import Document, parse_date
from ..errors import IndexBusy, IndexCorrupt, IndexMissing, UnknownDocument
from ..lexical import LexicalIndex, SegmentedBM25
from . import local_search
from .generations import (
    SEGMENTED_FORMAT,
    CommittedIndex,
    IndexConfig,
    Manifest,
    check_compatible,
    committed_generation,
    generation_dir,
)
from .protocol import Candidates, Filters, Signal, StoredChunk
from .rows import STORE, open_for_reading
from .segmented_vectors import SegmentedVectors
from .segments import SEGMENTS, Segment, folder_identity, legacy_segment

# What a listing shows of each document; a full read adds its metadata and text.
_HEADER_COLUMNS = "id, title, source, url, published"


class IndexReader(CommittedIndex):
    """A read-only view of one committed generation, safe to share between threads.

    The local ``SearchBackend``: its ``candidates`` are gathered by ``local_search``.
    ``previous``, a reader of an earlier generation of the same index, lends the segments the
    two share, so that opening the next generation reads only what changed.
    """

    def __init__(self, index_dir: Path, manifest: Manifest, previous: IndexReader | None = None):
        self.index_dir = index_dir
        self.directory = generation_dir(index_dir, manifest.generation)
        self.manifest = manifest
        self._db_lock = threading.Lock()
        if manifest.format_version >= SEGMENTED_FORMAT:
            self._db = open_for_reading(index_dir / STORE, manifest.generation)
            lent = {s.name: s for s in previous.segments} if previous is not None else {}
            self.segments = [_borrowed(lent.get(name), index_dir / SEGMENTS / name) or
                             Segment.load(index_dir / SEGMENTS / name) for name, _ in manifest.segments]
        else:
            self._db = sqlite3.connect(f"file:{self.directory / STORE}?mode=ro&immutable=1", uri=True,
                                       check_same_thread=False)
            self.segments = [legacy_segment(self.directory, self._db, "legacy")]
        chunk_ids = np.array(self._query("SELECT id FROM chunks ORDER BY id"), dtype=np.int64).reshape(-1)
        owners = np.array(self._query("SELECT id, chunk_id FROM sentences ORDER BY id"),
                          dtype=np.int64).reshape(-1, 2)
        self.sentence_ids, self.sentence_chunk_ids = owners[:, 0], owners[:, 1]
        self._by_chunk = np.argsort(self.sentence_chunk_ids, kind="stable")  # sentences in chunk order
        self._chunk_by_chunk = self.sentence_chunk_ids[self._by_chunk]
        self.dense = SegmentedVectors([s.chunks for s in self.segments], chunk_ids)
        self.sentences = SegmentedVectors([s.sentences for s in self.segments], self.sentence_ids)
        self.lexical = _segmented_bm25(self.segments, chunk_ids)
        self._row_of_chunk = {int(cid): row for row, cid in enumerate(self.lexical.ids)}
        if not (self.dense.size == len(self.lexical.ids) == len(chunk_ids) == manifest.chunks):
            raise IndexCorrupt(
                f"index at {index_dir} is inconsistent: {self.dense.size} vectors, "
                f"{len(self.lexical.ids)} BM25 rows, {len(chunk_ids)} chunk rows, manifest says "
                f"{manifest.chunks} chunks")
        if not self.sentences.size == len(self.sentence_ids) == manifest.sentences:
            raise IndexCorrupt(
                f"index at {index_dir} is inconsistent: {self.sentences.size} sentence vectors, "
                f"{len(self.sentence_ids)} sentence rows, manifest says {manifest.sentences}")
        # Both are in id order, so this maps each sentence (row of the sentence BM25) to its
        # chunk's BM25 row.
        self.sentence_chunk_rows = np.searchsorted(self.lexical.ids, self.sentence_chunk_ids)
        self._sentence_lexical: LexicalIndex | None = None
        self._sentence_lexical_lock = threading.Lock()
        self.dense.start_approximate()
        if self.sentences.size < local_search.RESCORE_SENTENCES_FROM:  # else never searched whole
            self.sentences.start_approximate()

    def candidates(self, question: str, query: np.ndarray | None, n: int, filters: Filters,
                   signals: Sequence[Signal]) -> Candidates:
        return local_search.candidates(self, question, query, n, filters, signals)

    def wait_for_approximate(self) -> None:
        """Block until the approximate vector indexes being built (large indexes only) are ready."""
        self.dense.wait_for_approximate()
        self.sentences.wait_for_approximate()

    @property
    def sentence_lexical(self) -> LexicalIndex:
        """BM25 over each sentence's text, rows in sentence id order, built on first use.

        Only the opt-in sentence BM25 signal reads it, so it is not stored: building it at every
        commit was about half the BM25 work of each write, for a signal off by default.
        """
        with self._sentence_lexical_lock:
            if self._sentence_lexical is None:
                # Sentences without the title: on SQuAD train articles the title only added noise here.
                found = self._query('SELECT s.id, substr(c.text, s.start + 1, s."end" - s.start) FROM sentences s '
                                    "JOIN chunks c ON c.id = s.chunk_id ORDER BY s.id")
                self._sentence_lexical = LexicalIndex.build([text for _, text in found], [i for i, _ in found])
            return self._sentence_lexical

    @classmethod
    def open(cls, index_dir: Path, expect: IndexConfig | None = None,
             previous: IndexReader | None = None) -> IndexReader:
        index_dir = Path(index_dir)
        # A writer may retire the generation between reading CURRENT and opening it: retry.
        for _attempt in range(5):
            generation = committed_generation(index_dir)
            if generation is None:
                raise IndexMissing(f"no index at {index_dir}; build one with `qa index CORPUS`")
            directory = generation_dir(index_dir, generation)
            try:
                manifest = Manifest.read(directory / "manifest.json")
                if expect is not None:
                    check_compatible(manifest, expect)
                return cls(index_dir, manifest, previous)
            except FileNotFoundError:
                if committed_generation(index_dir) == generation:
                    raise IndexCorrupt(f"committed generation {directory} is incomplete") from None
            except (sqlite3.Error, RuntimeError, ValueError, KeyError, TypeError) as exc:
                raise IndexCorrupt(f"cannot read index at {directory}: {exc}") from None
        raise IndexBusy("the index kept changing while it was being opened; try again")

    def close(self) -> None:
        self._db.close()

    def _query(self, sql: str, params: Sequence = ()) -> list[tuple]:
        with self._db_lock:
            return self._db.execute(sql, params).fetchall()

    def chunk_row(self, chunk_id: int) -> int:
        return self._row_of_chunk[chunk_id]

    def chunks(self, chunk_ids: Sequence[int]) -> list[StoredChunk]:
        """Chunks in the order asked for."""
        if not chunk_ids:
            return []
        marks = ",".join("?" * len(chunk_ids))
        rows = self._query(
            f'SELECT id, doc_id, start, "end", text FROM chunks WHERE id IN ({marks})',
            [int(i) for i in chunk_ids])
        by_id = {row[0]: StoredChunk(*row) for row in rows}
        return [by_id[int(i)] for i in chunk_ids if int(i) in by_id]

    def document(self, doc_id: str) -> Document:
        rows = self._query(
            f"SELECT {_HEADER_COLUMNS}, metadata, text FROM documents WHERE id = ?",
            (doc_id,))
        if not rows:
            raise UnknownDocument(f"no document with id {doc_id!r}")
        return _row_to_document(rows[0])

    def documents(self, doc_ids: Sequence[str], *, with_text: bool = True) -> dict[str, Document]:
        """The documents by id; ``with_text=False`` leaves their text empty (metadata only)."""
        if not doc_ids:
            return {}
        marks = ",".join("?" * len(doc_ids))
        text = "text" if with_text else "''"
        rows = self._query(
            f"SELECT {_HEADER_COLUMNS}, metadata, {text} FROM documents "
            f"WHERE id IN ({marks})", list(doc_ids))
        return {row[0]: _row_to_document(row) for row in rows}

    def story_copies(self, story_ids: Sequence[str]) -> dict[str, list[str]]:
        if not story_ids:
            return {}
        marks = ",".join("?" * len(story_ids))
        story = "json_extract(metadata, '$.story')"
        copies: dict[str, list[str]] = {}
        for doc_id, story_id in self._query(
                f"SELECT id, {story} FROM documents WHERE {story} IS NOT NULL AND {story} IN ({marks}) "
                "ORDER BY id", list(story_ids)):
            copies.setdefault(story_id, []).append(doc_id)
        return copies

    def list_documents(self, *, offset: int = 0, limit: int = 50, sources: Sequence[str] = (),
                       since: str | None = None, until: str | None = None) -> tuple[int, list[dict]]:
        where, params = _document_filter(sources=sources, since=since, until=until)
        total = self._query(f"SELECT COUNT(*) FROM documents {where}", params)[0][0]
        rows = self._query(
            f"SELECT {_HEADER_COLUMNS}, length(text) FROM documents {where} "
            "ORDER BY published DESC, id LIMIT ? OFFSET ?", [*params, limit, offset])
        keys = (*_HEADER_COLUMNS.split(", "), "characters")
        return total, [dict(zip(keys, row)) for row in rows]

    def chunk_ids_matching(self, *, sources: Sequence[str] = (), doc_ids: Sequence[str] = (),
                           since: str | None = None, until: str | None = None) -> np.ndarray:
        where, params = _document_filter(sources=sources, doc_ids=doc_ids, since=since, until=until)
        rows = self._query(
            f"SELECT chunks.id FROM chunks JOIN documents ON documents.id = chunks.doc_id {where}",
            params)
        return np.array([r[0] for r in rows], dtype=np.int64)

    def chunk_of_sentences(self, sentence_ids: np.ndarray) -> np.ndarray:
        """The chunk id of each sentence id."""
        return self.sentence_chunk_ids[np.searchsorted(self.sentence_ids, sentence_ids)]

    def sentence_ids_of_chunks(self, chunk_ids: np.ndarray) -> np.ndarray:
        return np.sort(self.sentences_of(chunk_ids)[0])

    def sentences_of(self, chunk_ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """(sentence ids, the position in ``chunk_ids`` of each one's chunk), found without a scan."""
        wanted = np.asarray(chunk_ids, dtype=np.int64)
        starts = np.searchsorted(self._chunk_by_chunk, wanted, "left")
        counts = np.searchsorted(self._chunk_by_chunk, wanted, "right") - starts
        # Each chunk's run of places in chunk order, one run after another.
        places = np.arange(counts.sum()) + np.repeat(starts - (np.cumsum(counts) - counts), counts)
        return self.sentence_ids[self._by_chunk[places]], np.repeat(np.arange(len(wanted)), counts)

    def document_hashes(self) -> dict[str, str]:
        return dict(self._query("SELECT id, content_hash FROM documents"))

    def last_indexed(self) -> str | None:
        return self._query("SELECT MAX(indexed_at) FROM documents")[0][0]

    def verify(self) -> None:
        """Full consistency check: vectors, chunk and sentence rows, BM25 and manifest agree."""
        dense_ids = set(self.dense.ids().tolist())
        sentence_vector_ids = set(self.sentences.ids().tolist())
        chunk_ids = {r[0] for r in self._query("SELECT id FROM chunks")}
        lexical_ids = set(self.lexical.ids.tolist())
        documents = self._query("SELECT COUNT(*) FROM documents")[0][0]
        orphans = self._query(
            "SELECT COUNT(*) FROM chunks LEFT JOIN documents ON documents.id = chunks.doc_id "
            "WHERE documents.id IS NULL")[0][0]
        problems = []
        if dense_ids != chunk_ids:
            problems.append(f"{len(dense_ids ^ chunk_ids)} chunk ids differ between FAISS and SQLite")
        if sentence_vector_ids != set(self.sentence_ids.tolist()):
            problems.append("sentence ids differ between FAISS and SQLite")
        if not set(self.sentence_chunk_ids.tolist()) <= chunk_ids:
            problems.append("sentences belong to no chunk")
        if lexical_ids != chunk_ids:
            problems.append(f"{len(lexical_ids ^ chunk_ids)} chunk ids differ between BM25 and SQLite")
        if (len(chunk_ids), documents, len(self.sentence_ids)) != (
                self.manifest.chunks, self.manifest.documents, self.manifest.sentences):
            problems.append("counts differ from the manifest")
        if orphans:
            problems.append(f"{orphans} chunks belong to no document")
        if problems:
            raise IndexCorrupt(f"index at {self.directory}: " + "; ".join(problems))

    def size_on_disk(self) -> int:
        """Bytes of what this generation reads: its folder, the database and its segments."""
        if self.manifest.format_version < SEGMENTED_FORMAT:
            paths = [self.directory]
        else:
            paths = [self.directory, *(self.index_dir / SEGMENTS / name for name, _ in self.manifest.segments),
                     *self.index_dir.glob(f"{STORE}*")]
        return sum(f.stat().st_size for p in paths for f in ([p] if p.is_file() else p.rglob("*")) if f.is_file())


def _borrowed(segment: Segment | None, directory: Path) -> Segment | None:
    """``segment`` if it was read from ``directory`` as it is now, else None."""
    return segment if segment is not None and segment.identity == folder_identity(directory) else None


def _segmented_bm25(segments: Sequence[Segment], chunk_ids: np.ndarray) -> SegmentedBM25:
    """BM25 over the live chunks of ``segments`` (``chunk_ids``, sorted), in chunk id order."""
    found = np.sort(np.concatenate([s.words.ids[np.isin(s.words.ids, chunk_ids)] for s in segments]
                                   or [np.zeros(0, np.int64)]))
    live_rows = []
    for segment in segments:
        at = np.minimum(np.searchsorted(found, segment.words.ids), max(len(found) - 1, 0))
        live = (found[at] == segment.words.ids) if len(found) else np.zeros(len(segment.words.ids), bool)
        live_rows.append(np.where(live, at, -1))
    return SegmentedBM25([s.words for s in segments], live_rows, found)

def _document_filter(*, sources: Sequence[str] = (), doc_ids: Sequence[str] = (),
                     since: str | None = None, until: str | None = None) -> tuple[str, list]:
    clauses, params = [], []
    if sources:
        clauses.append(f"documents.source IN ({','.join('?' * len(sources))})")
        params += list(sources)
    if doc_ids:
        clauses.append(f"documents.id IN ({','.join('?' * len(doc_ids))})")
        params += list(doc_ids)
    if since:
        clauses.append("documents.published >= ?")
        params.append(since)
    if until:
        clauses.append("documents.published <= ?")
        params.append(until)
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", params


def _row_to_document(row: tuple) -> Document:
    doc_id, title, source, url, published, metadata, text = row
    return Document(id=doc_id, title=title, text=text, source=source, url=url,
                    published=parse_date(published), metadata=json.loads(metadata))
