"""The local index on disk: immutable generations, committed by swapping one pointer file.

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
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import IndexBusy, IndexCorrupt, IndexFull, IndexMismatch, IndexReadOnly, IndexWriteFailed
from ..lexical import LexicalIndex, TokenTable
from .protocol import IndexedDocument, indexed_text
from .vectors import VectorIndex

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
# Documents by near-duplicate story (qa.duplicates); created on older generations at their next write.
STORY_INDEX = ("CREATE INDEX IF NOT EXISTS documents_story ON documents("
               "json_extract(metadata, '$.story')) WHERE json_extract(metadata, '$.story') IS NOT NULL")


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


class CommittedIndex:
    """What any backend answers from the manifest of the generation it serves, without a query."""

    manifest: Manifest

    @property
    def chunk_count(self) -> int:
        return self.manifest.chunks

    @property
    def with_sentences(self) -> bool:
        return self.manifest.sentence_vectors


@dataclass(frozen=True)
class IndexConfig:
    """What an index is built with; opening it with anything else is a mismatch."""
    model: str
    dimension: int
    chunk_tokens: int
    chunk_overlap: int
    sentence_vectors: bool = True


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def generation_dir(index_dir: Path, generation: int) -> Path:
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
                    raise IndexBusy(f"another process is writing the index at {self.index_dir}") from None
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
            source = generation_dir(self.index_dir, self.previous)
            manifest = Manifest.read(source / "manifest.json")
            check_compatible(manifest, self.config)
            self.created_at = manifest.created_at
            committed = sqlite3.connect(f"file:{source / 'store.sqlite'}?mode=ro", uri=True)
            with contextlib.closing(committed) as old:  # closed even when the copy fails
                self.db = sqlite3.connect(db_path)
                old.backup(self.db)
            self.dense = VectorIndex.read(source / "vectors.faiss")
            self.sentences = VectorIndex.read(source / "sentences.faiss")
            # Words of the chunks indexed before, so that a commit tokenizes only what it writes.
            self._previous_words = TokenTable.load(source / "bm25")
        else:
            self.db = sqlite3.connect(db_path)
            self.db.executescript(_SCHEMA)
            self._previous_words = None
            self.dense = VectorIndex.empty(self.config.dimension)
            self.sentences = VectorIndex.empty(self.config.dimension)
        self.db.execute("PRAGMA foreign_keys = ON")
        self.db.execute(STORY_INDEX)
        # Ids written now may be those of rows deleted now: their words are never reused.
        self._written_chunks: set[int] = set()

    def document_hashes(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT id, content_hash FROM documents").fetchall())

    @_reports_disk_errors
    def delete(self, doc_ids: Sequence[str]) -> None:
        for doc_id in doc_ids:
            ids = [r[0] for r in self.db.execute("SELECT id FROM chunks WHERE doc_id = ?", (doc_id,))]
            if ids:
                self.dense.remove(np.array(ids, dtype=np.int64))
            sentence_ids = [r[0] for r in self.db.execute(
                "SELECT s.id FROM sentences s JOIN chunks c ON c.id = s.chunk_id WHERE c.doc_id = ?",
                (doc_id,))]
            if sentence_ids:
                self.sentences.remove(np.array(sentence_ids, dtype=np.int64))
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
            self.dense.add(item.vectors, ids)
        self._written_chunks.update(ids.tolist())
        next_sentence = (self.db.execute("SELECT MAX(id) FROM sentences").fetchone()[0] or 0) + 1
        sentence_ids = np.arange(next_sentence, next_sentence + len(item.sentences), dtype=np.int64)
        self.db.executemany(
            'INSERT INTO sentences (id, chunk_id, start, "end") VALUES (?, ?, ?, ?)',
            [(int(i), int(ids[s.chunk_index]), s.start, s.end)
             for i, s in zip(sentence_ids, item.sentences)])
        if len(sentence_ids):
            self.sentences.add(item.sentence_vectors, sentence_ids)

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
        self.dense.write(self._staging / "vectors.faiss")
        self.sentences.write(self._staging / "sentences.faiss")
        manifest = Manifest(
            format_version=FORMAT_VERSION, model=self.config.model, dimension=self.config.dimension,
            chunk_tokens=self.config.chunk_tokens, chunk_overlap=self.config.chunk_overlap,
            documents=documents, chunks=len(rows), sentences=sentences, generation=self.generation,
            created_at=self.created_at, updated_at=_now(), sentence_vectors=self.config.sentence_vectors)
        (self._staging / "manifest.json").write_text(json.dumps(asdict(manifest), indent=2) + "\n")
        _fsync_tree(self._staging)
        final = generation_dir(self.index_dir, self.generation)
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

