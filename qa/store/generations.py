"""The local index on disk: generations committed by swapping one pointer file.

Layout (see index/README.md)::

    INDEX_DIR/CURRENT          name of the committed generation, replaced atomically
    INDEX_DIR/gen-000007/      manifest.json: the segments and counts of generation 7
    INDEX_DIR/store.sqlite     documents, chunks, sentences, tagged with generations (``rows``)
    INDEX_DIR/segments/        immutable segments of vectors and word counts (``segments``)
    INDEX_DIR/.lock            held by the one process writing

A writer tags its rows with the generation it stages and writes the chunks it adds as one new
segment. It fsyncs the segment, commits its SQLite transaction, writes the manifest in
``gen-N.tmp``, renames it and only then replaces ``CURRENT``. A crash at any moment leaves
``CURRENT`` naming a complete generation: its manifest names segments that are whole, and the
rows of later generations are invisible to its readers until the next writer takes them back.
Neither the rows nor the vectors of earlier documents are copied or rewritten, so a commit
costs what it adds, plus now and then a merge of the newest segments.
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
from ..lexical import count_words
from . import rows
from .protocol import IndexedDocument, indexed_text
from .segments import SEGMENTS, Segment, legacy_segment, merged, segment_name, to_merge
from .vectors import VectorIndex

# 2: sentence vectors beside the chunk vectors; 3: BM25 over sentences too; 4: that BM25 is
# built when first used instead; 5: rows tagged with generations in one database, vectors and
# word counts in segments. Formats 3 and 4 are read as they are, and converted at their next write.
FORMAT_VERSION = 5
SEGMENTED_FORMAT = 5
_READABLE_FORMATS = (3, 4, 5)
CURRENT = "CURRENT"
_KEEP_GENERATIONS = 2  # the committed one and the one before, which readers may still hold


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
    # Format 5 on: [name, rows] of each segment, oldest first, and the next ids to hand out.
    segments: tuple = ()
    next_chunk_id: int = 1
    next_sentence_id: int = 1
    next_segment: int = 1

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


def _nearly_full(path: Path) -> bool:
    with contextlib.suppress(OSError):
        return shutil.disk_usage(path).free < 65536
    return False


def _write_failure(exc: OSError | sqlite3.Error, index_dir: Path) -> IndexWriteFailed | None:
    """What to report when writing the index raised ``exc``; None when it is no disk error."""
    if isinstance(exc, sqlite3.OperationalError):
        code = _SQLITE_ERRNO.get(getattr(exc, "sqlite_errorcode", -1) & 0xFF)
        if code is None:
            return None
        if code == errno.EIO and _nearly_full(index_dir):
            code = errno.ENOSPC  # SQLite reports a shared-memory file it could not size as I/O
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
        self._new_segment: Path | None = None  # written by this writer, not yet named by CURRENT
        self._rows_committed = False

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
            if self._staging is not None:  # not committed: nothing of this writer may stay behind
                self._undo()
            if getattr(self, "db", None) is not None:
                self.db.close()
        finally:
            self._release()

    def _undo(self) -> None:
        db = getattr(self, "db", None)
        if db is not None and db.in_transaction:
            db.execute("ROLLBACK")
        elif db is not None and self._rows_committed:  # the next writer does it if this fails too (a full disk)
            with contextlib.suppress(sqlite3.Error):
                rows.begin(db)
                rows.discard_after(db, self.previous or 0)
                db.execute("COMMIT")
        for path in (self._staging, self._new_segment):
            if path is not None:
                shutil.rmtree(path, ignore_errors=True)
                shutil.rmtree(path.with_name(path.name + ".tmp"), ignore_errors=True)
        with contextlib.suppress(OSError):  # EROFS even when absent, on a read-only mount
            (self.index_dir / f"{CURRENT}.tmp").unlink(missing_ok=True)

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
        before = None
        if self.previous is not None:
            before = Manifest.read(generation_dir(self.index_dir, self.previous) / "manifest.json")
            if not self.rebuild:
                check_compatible(before, self.config)
        self.created_at = before.created_at if before is not None and not self.rebuild else _now()
        if before is None or before.format_version < SEGMENTED_FORMAT:
            # No segmented generation is committed: whatever a writer left of one is unused.
            for name in (rows.STORE, f"{rows.STORE}-wal", f"{rows.STORE}-shm"):
                (self.index_dir / name).unlink(missing_ok=True)
            shutil.rmtree(self.index_dir / SEGMENTS, ignore_errors=True)
        self._segments_dir = self.index_dir / SEGMENTS
        self._segments_dir.mkdir(exist_ok=True)
        self._remove_unused_segments(self.previous or 0)
        self._staging = self.index_dir / f"gen-{self.generation:06d}.tmp"
        self._staging.mkdir()
        self.db = rows.open_for_writing(self.index_dir / rows.STORE)
        self.segments: list[list] = []
        self.next_chunk_id = self.next_sentence_id = self.next_segment = 1
        self.counts = {"documents": 0, "chunks": 0, "sentences": 0}
        if before is not None and before.format_version >= SEGMENTED_FORMAT:
            # Ids are never handed out twice, not even by a rebuild: older readers still hold them.
            self.next_chunk_id, self.next_sentence_id = before.next_chunk_id, before.next_sentence_id
            self.next_segment = before.next_segment
        if before is not None and not self.rebuild:
            self.counts = {"documents": before.documents, "chunks": before.chunks, "sentences": before.sentences}
            if before.format_version < SEGMENTED_FORMAT:
                self._convert()
            else:
                self.segments = [list(entry) for entry in before.segments]
        rows.begin(self.db)
        rows.discard_after(self.db, self.previous or 0)
        if self.previous is not None:
            rows.purge_through(self.db, self.previous - 1)
        if self.rebuild:
            rows.remove_everything(self.db, self.generation)
        # What this writer adds, which becomes its segment at the commit.
        self._chunks = VectorIndex.empty(self.config.dimension)
        self._sentences = VectorIndex.empty(self.config.dimension)
        self._chunk_texts: dict[int, str] = {}
        self._sentence_ids: set[int] = set()

    def _convert(self) -> None:
        """Bring a committed older-format generation in: its rows, and its files as one segment."""
        source = generation_dir(self.index_dir, self.previous)
        rows.import_legacy(self.db, source / rows.STORE, self.previous)
        with contextlib.closing(sqlite3.connect(f"file:{source / rows.STORE}?mode=ro", uri=True)) as old:
            segment = legacy_segment(source, old, segment_name(self.next_segment))
        self.next_segment += 1
        self._new_segment = segment.write(self._segments_dir)
        self.segments = [[segment.name, segment.rows]]
        for table, column in (("chunks", "next_chunk_id"), ("sentences", "next_sentence_id")):
            setattr(self, column, (self.db.execute(f"SELECT MAX(id) FROM {table}").fetchone()[0] or 0) + 1)

    def document_hashes(self, doc_ids: Sequence[str] | None = None) -> dict[str, str]:
        return rows.document_hashes(self.db, doc_ids)

    @_reports_disk_errors
    def delete(self, doc_ids: Sequence[str]) -> None:
        for doc_id in doc_ids:
            documents, chunk_ids, sentence_ids = rows.remove_document(self.db, doc_id, self.generation)
            self.counts["documents"] -= documents
            self.counts["chunks"] -= len(chunk_ids)
            self.counts["sentences"] -= len(sentence_ids)
            # What this same writer added earlier leaves its segment-to-be too.
            staged = [i for i in chunk_ids if self._chunk_texts.pop(i, None) is not None]
            if staged:
                self._chunks.remove(np.array(staged, dtype=np.int64))
            staged = [i for i in sentence_ids if i in self._sentence_ids]
            if staged:
                self._sentence_ids.difference_update(staged)
                self._sentences.remove(np.array(staged, dtype=np.int64))

    @_reports_disk_errors
    def upsert(self, item: IndexedDocument) -> None:
        doc = item.document
        if len(item.chunks) != len(item.vectors) or len(item.sentences) != len(item.sentence_vectors):
            raise ValueError("one vector per chunk and per sentence is required")
        self.delete([doc.id])
        g = self.generation
        self.db.execute(
            f"INSERT INTO documents ({rows.COLUMNS['documents']}, added) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (doc.id, doc.title, doc.source, doc.url, doc.published_iso,
             json.dumps(doc.metadata, ensure_ascii=False), doc.text, doc.content_hash, _now(), g))
        ids = np.arange(self.next_chunk_id, self.next_chunk_id + len(item.chunks), dtype=np.int64)
        self.next_chunk_id += len(ids)
        self.db.executemany(
            f"INSERT INTO chunks ({rows.COLUMNS['chunks']}, added) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(int(i), c.doc_id, c.ordinal, c.start, c.end, c.text, g) for i, c in zip(ids, item.chunks)])
        if len(ids):
            self._chunks.add(item.vectors, ids)
        self._chunk_texts.update((int(i), indexed_text(doc.title, c.text)) for i, c in zip(ids, item.chunks))
        sentence_ids = np.arange(self.next_sentence_id, self.next_sentence_id + len(item.sentences), dtype=np.int64)
        self.next_sentence_id += len(sentence_ids)
        self.db.executemany(
            f"INSERT INTO sentences ({rows.COLUMNS['sentences']}, added) VALUES (?, ?, ?, ?, ?)",
            [(int(i), int(ids[s.chunk_index]), s.start, s.end, g) for i, s in zip(sentence_ids, item.sentences)])
        if len(sentence_ids):
            self._sentences.add(item.sentence_vectors, sentence_ids)
            self._sentence_ids.update(sentence_ids.tolist())
        self.counts["documents"] += 1
        self.counts["chunks"] += len(ids)
        self.counts["sentences"] += len(sentence_ids)

    def commit(self) -> Manifest:
        """Write the staged generation durably, then make it the committed one."""
        manifest = self._write_generation()
        _fsync_dir(self.index_dir)
        self._retire_old_generations()
        return manifest

    def _staged_segment(self) -> Segment | None:
        """This writer's chunks as a segment, merged with the newest ones when ``to_merge`` says so."""
        if not self._chunk_texts:
            return None
        ids = sorted(self._chunk_texts)
        words = count_words([self._chunk_texts[i] for i in ids], ids)
        segment = Segment(segment_name(self.next_segment), self._chunks, self._sentences, words)
        self.next_segment += 1
        merging = to_merge([rows_ for _, rows_ in self.segments] + [segment.rows]) - 1
        if merging:
            parts = [Segment.load(self._segments_dir / name) for name, _ in self.segments[-merging:]] + [segment]
            first_chunk = int(parts[0].words.ids[0])  # ids grow from segment to segment
            first_sentence = min((int(p.sentences.ids().min()) for p in parts if p.sentences.size),
                                 default=self.next_sentence_id)
            segment = merged(segment.name, parts,
                             np.array(rows.live_ids(self.db, "chunks", first_chunk), dtype=np.int64),
                             np.array(rows.live_ids(self.db, "sentences", first_sentence), dtype=np.int64),
                             self.config.dimension)
            del self.segments[-merging:]
        return segment

    @_reports_disk_errors
    def _write_generation(self) -> Manifest:
        """Everything up to and including the commit point; a failure leaves no trace (see __exit__)."""
        assert self._staging is not None, "commit() outside the context manager"
        segment = self._staged_segment()
        if segment is not None:
            self._new_segment = self._segments_dir / segment.name
            segment.write(self._segments_dir)
            _fsync_tree(self._new_segment)
            _fsync_dir(self._segments_dir)
            self.segments.append([segment.name, segment.rows])
        self.db.execute("COMMIT")
        self._rows_committed = True
        rows.checkpoint(self.db)
        manifest = Manifest(
            format_version=FORMAT_VERSION, model=self.config.model, dimension=self.config.dimension,
            chunk_tokens=self.config.chunk_tokens, chunk_overlap=self.config.chunk_overlap,
            generation=self.generation, created_at=self.created_at, updated_at=_now(),
            sentence_vectors=self.config.sentence_vectors, segments=tuple(self.segments),
            next_chunk_id=self.next_chunk_id, next_sentence_id=self.next_sentence_id,
            next_segment=self.next_segment, **self.counts)
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
        self._staging = self._new_segment = None
        return manifest

    def _retire_old_generations(self) -> None:
        keep = {self.generation - i for i in range(_KEEP_GENERATIONS)}
        for path in self.index_dir.glob("gen-*"):
            if path.suffix != ".tmp" and int(path.name[4:]) not in keep:
                shutil.rmtree(path, ignore_errors=True)
        self._remove_unused_segments(self.generation)

    def _remove_unused_segments(self, newest: int) -> None:
        """Remove the segments that neither generation ``newest`` nor the one before names."""
        used: set[str] = set()
        for generation in (newest, newest - 1):
            path = generation_dir(self.index_dir, generation) / "manifest.json"
            if path.is_file():
                used.update(name for name, _ in Manifest.read(path).segments)
        for path in self._segments_dir.iterdir():
            if path.name not in used:
                shutil.rmtree(path, ignore_errors=True)
