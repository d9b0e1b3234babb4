"""The on-disk index: immutable generations, committed by swapping one pointer file.

Layout (see index/README.md)::

    INDEX_DIR/CURRENT          name of the committed generation, replaced atomically
    INDEX_DIR/gen-000007/      manifest.json, store.sqlite, vectors.faiss, sentences.faiss, bm25/
    INDEX_DIR/.lock            held by the one process writing

A writer builds the next generation in ``gen-N.tmp``, fsyncs it, renames it and only then
replaces ``CURRENT``. A crash at any moment leaves ``CURRENT`` naming a complete generation;
readers open whatever ``CURRENT`` names and never see a half-written one.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import json
import os
import shutil
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

import numpy as np

from . import vectors
from .chunking import Chunk
from .documents import Document, parse_date
from .errors import (
    IndexBusy,
    IndexCorrupt,
    IndexFull,
    IndexMismatch,
    IndexMissing,
    IndexReadOnly,
    IndexWriteFailed,
    UnknownDocument,
)
from .lexical import LexicalIndex, TokenTable

# 2: sentence vectors beside the chunk vectors; 3: BM25 over sentences too; 4: that BM25 is
# built when first used instead (a format-3 index reads the same: its copy is left unused).
FORMAT_VERSION = 4
_READABLE_FORMATS = (3, 4)
CURRENT = "CURRENT"
_KEEP_GENERATIONS = 2  # the committed one and the one before, which readers may still hold

_SCHEMA = """
CREATE TABLE documents (
    id TEXT PRIMARY KEY, title TEXT NOT NULL, source TEXT NOT NULL, url TEXT NOT NULL,
    published TEXT, metadata TEXT NOT NULL, text TEXT NOT NULL, content_hash TEXT NOT NULL,
    indexed_at TEXT NOT NULL);
CREATE INDEX documents_source ON documents(source);
CREATE INDEX documents_published ON documents(published);
CREATE TABLE chunks (
    id INTEGER PRIMARY KEY, doc_id TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    ordinal INTEGER NOT NULL, start INTEGER NOT NULL, "end" INTEGER NOT NULL, text TEXT NOT NULL);
CREATE INDEX chunks_doc ON chunks(doc_id);
CREATE TABLE sentences (
    id INTEGER PRIMARY KEY, chunk_id INTEGER NOT NULL REFERENCES chunks(id) ON DELETE CASCADE,
    start INTEGER NOT NULL, "end" INTEGER NOT NULL);
CREATE INDEX sentences_chunk ON sentences(chunk_id);
"""


@dataclass(frozen=True)
class Manifest:
    format_version: int
    model: str
    dimension: int
    chunk_tokens: int
    chunk_overlap: int
    documents: int
    chunks: int
    sentences: int
    generation: int
    created_at: str
    updated_at: str
    sentence_vectors: bool = True  # absent from manifests written before it was a choice

    @classmethod
    def read(cls, path: Path) -> Manifest:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format_version") not in _READABLE_FORMATS:
            raise IndexMismatch(
                f"index format {data.get('format_version')} is not one this version reads "
                f"({', '.join(map(str, _READABLE_FORMATS))}); rebuild it with `qa index --rebuild`")
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass(frozen=True)
class IndexConfig:
    """What an index is built with; opening it with anything else is a mismatch."""
    model: str
    dimension: int
    chunk_tokens: int
    chunk_overlap: int
    sentence_vectors: bool = True


@dataclass(frozen=True)
class StoredChunk:
    id: int
    doc_id: str
    start: int
    end: int
    text: str


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _generation_dir(index_dir: Path, generation: int) -> Path:
    return index_dir / f"gen-{generation:06d}"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    for path in sorted(root.rglob("*")):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
    for path in sorted((p for p in root.rglob("*") if p.is_dir()), reverse=True):
        _fsync_dir(path)
    _fsync_dir(root)


_NO_SPACE = {errno.ENOSPC, errno.EDQUOT}
_NOT_WRITABLE = {errno.EROFS, errno.EACCES, errno.EPERM}
# SQLite reports disk trouble with its own result codes: FULL, READONLY, IOERR, CANTOPEN.
_SQLITE_ERRNO = {13: errno.ENOSPC, 8: errno.EROFS, 10: errno.EIO, 14: errno.EIO}


def _write_failure(exc: OSError | sqlite3.Error, index_dir: Path) -> IndexWriteFailed | None:
    """What to report when writing the index raised ``exc``; None when it is no disk error."""
    if isinstance(exc, sqlite3.OperationalError):
        code = _SQLITE_ERRNO.get(getattr(exc, "sqlite_errorcode", -1) & 0xFF)
        if code is None:
            return None
    elif isinstance(exc, OSError):
        code = exc.errno
    else:
        return None
    kept = "the previous index is intact" if (index_dir / CURRENT).is_file() else "no index was written"
    if code in _NO_SPACE:
        return IndexFull(f"no space left on device while writing the index at {index_dir}; {kept}")
    if code in _NOT_WRITABLE:
        return IndexReadOnly(f"the index directory {index_dir} is not writable "
                             f"({os.strerror(code).lower()}); {kept}")
    reason = os.strerror(code).lower() if code else str(exc)
    return IndexWriteFailed(f"could not write the index at {index_dir} ({reason}); {kept}")


def _reports_disk_errors(method):
    """An OSError (or SQLite disk error) while writing becomes an IndexWriteFailed that says why."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except (OSError, sqlite3.OperationalError) as exc:
            failure = _write_failure(exc, self.index_dir)
            if failure is None:
                raise
            raise failure from exc
    return wrapper


def committed_generation(index_dir: Path) -> int | None:
    pointer = Path(index_dir) / CURRENT
    if not pointer.is_file():
        return None
    name = pointer.read_text(encoding="utf-8").strip()
    if not name.startswith("gen-"):
        raise IndexCorrupt(f"{pointer} does not name a generation")
    return int(name[4:])


class IndexReader:
    """A read-only view of one committed generation, safe to share between threads."""

    def __init__(self, directory: Path, manifest: Manifest):
        self.directory = directory
        self.manifest = manifest
        self.dense = vectors.read(directory / "vectors.faiss")
        self.sentences = vectors.read(directory / "sentences.faiss")
        self.lexical = LexicalIndex.load(directory / "bm25")
        uri = f"file:{directory / 'store.sqlite'}?mode=ro&immutable=1"
        self._db = sqlite3.connect(uri, uri=True, check_same_thread=False)
        self._db_lock = threading.Lock()
        self._row_of_chunk = {int(cid): row for row, cid in enumerate(self.lexical.ids)}
        owners = np.array(self._query("SELECT id, chunk_id FROM sentences ORDER BY id"),
                          dtype=np.int64).reshape(-1, 2)
        self.sentence_ids, self.sentence_chunk_ids = owners[:, 0], owners[:, 1]
        if not (self.dense.ntotal == len(self.lexical.ids) == manifest.chunks):
            raise IndexCorrupt(
                f"index at {directory} is inconsistent: {self.dense.ntotal} vectors, "
                f"{len(self.lexical.ids)} BM25 rows, manifest says {manifest.chunks} chunks")
        if not self.sentences.ntotal == len(self.sentence_ids) == manifest.sentences:
            raise IndexCorrupt(
                f"index at {directory} is inconsistent: {self.sentences.ntotal} sentence vectors, "
                f"{len(self.sentence_ids)} sentence rows, manifest says {manifest.sentences}")
        # Both are in id order, so this maps each sentence (row of the sentence BM25) to its
        # chunk's BM25 row.
        self.sentence_chunk_rows = np.searchsorted(self.lexical.ids, self.sentence_chunk_ids)
        self._sentence_lexical: LexicalIndex | None = None
        self._sentence_lexical_lock = threading.Lock()

    @property
    def sentence_lexical(self) -> LexicalIndex:
        """BM25 over each sentence's text, rows in sentence id order, built on first use.

        Only the opt-in sentence BM25 signal reads it, so it is not stored: building it at every
        commit was about half the BM25 work of each write, for a signal off by default.
        """
        with self._sentence_lexical_lock:
            if self._sentence_lexical is None:
                # Sentences without the title: on SQuAD train articles the title only added noise here.
                rows = self._query('SELECT s.id, substr(c.text, s.start + 1, s."end" - s.start) FROM sentences s '
                                   "JOIN chunks c ON c.id = s.chunk_id ORDER BY s.id")
                built = LexicalIndex.build([text for _, text in rows], [i for i, _ in rows])
                built.tokens = None  # only a saved index needs its words, and this one is not saved
                self._sentence_lexical = built
            return self._sentence_lexical

    @classmethod
    def open(cls, index_dir: Path, expect: IndexConfig | None = None) -> IndexReader:
        index_dir = Path(index_dir)
        # A writer may retire the generation between reading CURRENT and opening it: retry.
        for attempt in range(5):
            generation = committed_generation(index_dir)
            if generation is None:
                raise IndexMissing(f"no index at {index_dir}; build one with `qa index CORPUS`")
            directory = _generation_dir(index_dir, generation)
            try:
                manifest = Manifest.read(directory / "manifest.json")
                if expect is not None:
                    check_compatible(manifest, expect)
                return cls(directory, manifest)
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
            "SELECT id, title, source, url, published, metadata, text FROM documents WHERE id = ?",
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
            f"SELECT id, title, source, url, published, metadata, {text} FROM documents "
            f"WHERE id IN ({marks})", list(doc_ids))
        return {row[0]: _row_to_document(row) for row in rows}

    def list_documents(self, *, offset: int = 0, limit: int = 50, sources: Sequence[str] = (),
                       since: str | None = None, until: str | None = None) -> tuple[int, list[dict]]:
        where, params = _document_filter(sources=sources, since=since, until=until)
        total = self._query(f"SELECT COUNT(*) FROM documents {where}", params)[0][0]
        rows = self._query(
            f"SELECT id, title, source, url, published, length(text) FROM documents {where} "
            "ORDER BY published DESC, id LIMIT ? OFFSET ?", [*params, limit, offset])
        keys = ("id", "title", "source", "url", "published", "characters")
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
        return self.sentence_ids[np.isin(self.sentence_chunk_ids, chunk_ids)]

    def document_hashes(self) -> dict[str, str]:
        return dict(self._query("SELECT id, content_hash FROM documents"))

    def last_indexed(self) -> str | None:
        return self._query("SELECT MAX(indexed_at) FROM documents")[0][0]

    def verify(self) -> None:
        """Full consistency check: vectors, chunk and sentence rows, BM25 and manifest agree."""
        dense_ids = set(vectors.ids(self.dense).tolist())
        sentence_vector_ids = set(vectors.ids(self.sentences).tolist())
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
        words = TokenTable.load(self.directory / "bm25")  # absent in older indexes; the next commit adds it
        if words is not None and not np.array_equal(words.ids, self.lexical.ids):
            problems.append("the saved words in bm25 are not those of its rows")
        if (len(chunk_ids), documents, len(self.sentence_ids)) != (
                self.manifest.chunks, self.manifest.documents, self.manifest.sentences):
            problems.append("counts differ from the manifest")
        if orphans:
            problems.append(f"{orphans} chunks belong to no document")
        if problems:
            raise IndexCorrupt(f"index at {self.directory}: " + "; ".join(problems))

    def size_on_disk(self) -> int:
        return sum(p.stat().st_size for p in self.directory.rglob("*") if p.is_file())


def check_compatible(manifest: Manifest, expect: IndexConfig) -> None:
    built = IndexConfig(manifest.model, manifest.dimension, manifest.chunk_tokens, manifest.chunk_overlap,
                        manifest.sentence_vectors)
    if built.model != expect.model or built.dimension != expect.dimension:
        raise IndexMismatch(
            f"the index was built with model {built.model!r} ({built.dimension} dimensions) but "
            f"{expect.model!r} ({expect.dimension} dimensions) is configured; "
            "rebuild it with `qa index --rebuild`")
    if (built.chunk_tokens, built.chunk_overlap) != (expect.chunk_tokens, expect.chunk_overlap):
        raise IndexMismatch(
            f"the index was built with chunks of {built.chunk_tokens}/{built.chunk_overlap} tokens "
            f"but {expect.chunk_tokens}/{expect.chunk_overlap} are configured; "
            "rebuild it with `qa index --rebuild`")
    if built.sentence_vectors != expect.sentence_vectors:
        raise IndexMismatch(
            f"the index was built {'with' if built.sentence_vectors else 'without'} sentence vectors but "
            f"QA_SENTENCE_VECTORS={str(expect.sentence_vectors).lower()} is configured; "
            "rebuild it with `qa index --rebuild`")


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


class IndexWriter:
    """Stages one new generation; nothing is visible to readers until ``commit``.

    Use as a context manager: it holds the index lock, and leaving without a commit
    discards the staged generation.
    """

    def __init__(self, index_dir: Path, config: IndexConfig, *, rebuild: bool = False,
                 wait_s: float = 30.0):
        self.index_dir = Path(index_dir)
        self.config = config
        self.rebuild = rebuild
        self.wait_s = wait_s
        self._lock_file = None
        self._staging: Path | None = None

    @_reports_disk_errors
    def __enter__(self) -> IndexWriter:
        try:
            self.index_dir.mkdir(parents=True, exist_ok=True)
            self._acquire_lock()
            self._prepare()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        try:
            if getattr(self, "db", None) is not None:
                self.db.close()
            if self._staging is not None:  # not committed: nothing of this writer may stay behind
                shutil.rmtree(self._staging, ignore_errors=True)
                with contextlib.suppress(OSError):  # EROFS even when absent, on a read-only mount
                    (self.index_dir / f"{CURRENT}.tmp").unlink(missing_ok=True)
        finally:
            self._release()

    def _acquire_lock(self) -> None:
        self._lock_file = open(self.index_dir / ".lock", "a+")
        deadline = time.monotonic() + self.wait_s
        while True:
            try:
                fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    self._lock_file.close()
                    self._lock_file = None
                    raise IndexBusy(f"another process is writing the index at {self.index_dir}")
                time.sleep(0.05)

    def _release(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def _prepare(self) -> None:
        self.previous = committed_generation(self.index_dir)
        # A crashed writer may have left a staged or renamed-but-never-committed generation.
        for path in self.index_dir.glob("gen-*"):
            if path.suffix == ".tmp" or int(path.name[4:]) > (self.previous or 0):
                shutil.rmtree(path, ignore_errors=True)
        self.generation = (self.previous or 0) + 1
        self._staging = self.index_dir / f"gen-{self.generation:06d}.tmp"
        self._staging.mkdir()
        db_path = self._staging / "store.sqlite"
        self.created_at = _now()
        if self.previous is not None and not self.rebuild:
            source = _generation_dir(self.index_dir, self.previous)
            manifest = Manifest.read(source / "manifest.json")
            check_compatible(manifest, self.config)
            self.created_at = manifest.created_at
            committed = sqlite3.connect(f"file:{source / 'store.sqlite'}?mode=ro", uri=True)
            with contextlib.closing(committed) as old:  # closed even when the copy fails
                self.db = sqlite3.connect(db_path)
                old.backup(self.db)
            self.dense = vectors.read(source / "vectors.faiss")
            self.sentences = vectors.read(source / "sentences.faiss")
            # Words of the chunks indexed before, so that a commit tokenizes only what it writes.
            self._previous_words = TokenTable.load(source / "bm25")
        else:
            self.db = sqlite3.connect(db_path)
            self.db.executescript(_SCHEMA)
            self._previous_words = None
            self.dense = vectors.empty(self.config.dimension)
            self.sentences = vectors.empty(self.config.dimension)
        self.db.execute("PRAGMA foreign_keys = ON")
        # Ids written now may be those of rows deleted now: their words are never reused.
        self._written_chunks: set[int] = set()

    def document_hashes(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT id, content_hash FROM documents").fetchall())

    @_reports_disk_errors
    def delete(self, doc_ids: Sequence[str]) -> None:
        for doc_id in doc_ids:
            ids = [r[0] for r in self.db.execute("SELECT id FROM chunks WHERE doc_id = ?", (doc_id,))]
            if ids:
                self.dense.remove_ids(np.array(ids, dtype=np.int64))
            sentence_ids = [r[0] for r in self.db.execute(
                "SELECT s.id FROM sentences s JOIN chunks c ON c.id = s.chunk_id WHERE c.doc_id = ?",
                (doc_id,))]
            if sentence_ids:
                self.sentences.remove_ids(np.array(sentence_ids, dtype=np.int64))
            self.db.execute("DELETE FROM chunks WHERE doc_id = ?", (doc_id,))
            self.db.execute("DELETE FROM documents WHERE id = ?", (doc_id,))

    @_reports_disk_errors
    def upsert(self, item: IndexedDocument) -> None:
        doc = item.document
        if len(item.chunks) != len(item.vectors) or len(item.sentences) != len(item.sentence_vectors):
            raise ValueError("one vector per chunk and per sentence is required")
        self.delete([doc.id])
        self.db.execute(
            "INSERT INTO documents VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (doc.id, doc.title, doc.source, doc.url, doc.published_iso,
             json.dumps(doc.metadata, ensure_ascii=False), doc.text, doc.content_hash, _now()))
        next_id = (self.db.execute("SELECT MAX(id) FROM chunks").fetchone()[0] or 0) + 1
        ids = np.arange(next_id, next_id + len(item.chunks), dtype=np.int64)
        self.db.executemany(
            'INSERT INTO chunks (id, doc_id, ordinal, start, "end", text) VALUES (?, ?, ?, ?, ?, ?)',
            [(int(i), c.doc_id, c.ordinal, c.start, c.end, c.text) for i, c in zip(ids, item.chunks)])
        if len(ids):
            self.dense.add_with_ids(np.ascontiguousarray(item.vectors, dtype=np.float32), ids)
        self._written_chunks.update(ids.tolist())
        next_sentence = (self.db.execute("SELECT MAX(id) FROM sentences").fetchone()[0] or 0) + 1
        sentence_ids = np.arange(next_sentence, next_sentence + len(item.sentences), dtype=np.int64)
        self.db.executemany(
            'INSERT INTO sentences (id, chunk_id, start, "end") VALUES (?, ?, ?, ?)',
            [(int(i), int(ids[s.chunk_index]), s.start, s.end)
             for i, s in zip(sentence_ids, item.sentences)])
        if len(sentence_ids):
            self.sentences.add_with_ids(
                np.ascontiguousarray(item.sentence_vectors, dtype=np.float32), sentence_ids)

    def commit(self) -> Manifest:
        """Write the staged generation durably, then make it the committed one."""
        manifest = self._write_generation()
        _fsync_dir(self.index_dir)
        self._retire_old_generations()
        return manifest

    @_reports_disk_errors
    def _write_generation(self) -> Manifest:
        """Everything up to and including the commit point; a failure leaves no trace (see __exit__)."""
        assert self._staging is not None, "commit() outside the context manager"
        self.db.commit()
        rows = self.db.execute("SELECT c.id, d.title, c.text FROM chunks c JOIN documents d "
                               "ON d.id = c.doc_id ORDER BY c.id").fetchall()
        sentences = self.db.execute("SELECT COUNT(*) FROM sentences").fetchone()[0]
        documents = self.db.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
        self.db.close()
        LexicalIndex.build([indexed_text(title, text) for _, title, text in rows], [r[0] for r in rows],
                           self._previous_words, self._written_chunks).save(self._staging / "bm25")
        vectors.write(self.dense, self._staging / "vectors.faiss")
        vectors.write(self.sentences, self._staging / "sentences.faiss")
        manifest = Manifest(
            format_version=FORMAT_VERSION, model=self.config.model, dimension=self.config.dimension,
            chunk_tokens=self.config.chunk_tokens, chunk_overlap=self.config.chunk_overlap,
            documents=documents, chunks=len(rows), sentences=sentences, generation=self.generation,
            created_at=self.created_at, updated_at=_now(), sentence_vectors=self.config.sentence_vectors)
        (self._staging / "manifest.json").write_text(json.dumps(asdict(manifest), indent=2) + "\n")
        _fsync_tree(self._staging)
        final = _generation_dir(self.index_dir, self.generation)
        os.rename(self._staging, final)
        self._staging = final  # until CURRENT names it, __exit__ still removes it
        _fsync_dir(self.index_dir)
        pointer_tmp = self.index_dir / f"{CURRENT}.tmp"
        with open(pointer_tmp, "w", encoding="utf-8") as handle:
            handle.write(final.name + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(pointer_tmp, self.index_dir / CURRENT)  # the commit point
        self._staging = None
        return manifest

    def _retire_old_generations(self) -> None:
        keep = {self.generation - i for i in range(_KEEP_GENERATIONS)}
        for path in self.index_dir.glob("gen-*"):
            if path.suffix != ".tmp" and int(path.name[4:]) not in keep:
                shutil.rmtree(path, ignore_errors=True)


def indexed_text(title: str, chunk_text: str) -> str:
    """What BM25 and the embedder see of a chunk: its document's title gives it context."""
    return f"{title}\n{chunk_text}"

