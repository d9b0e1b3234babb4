"""Documents, chunks and sentences in one SQLite database, each row tagged with generations.

A row is part of generation ``g`` when ``added <= g`` and it was not ``removed`` by ``g``.
A writer tags what it adds and removes with the generation it stages, and commits its SQLite
transaction before ``CURRENT`` names that generation: until then no reader sees those rows,
and if the writer dies in between, the next writer takes them back (``discard_after``). A
reader sees its generation through temporary views named like the tables, so every query
reads the same whatever the generation.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Sequence

STORE = "store.sqlite"
TABLES = ("documents", "chunks", "sentences")
_PARAMETERS = 500  # ids per query, well under SQLite's limit on bound parameters

SCHEMA = """
CREATE TABLE documents (
    id TEXT NOT NULL, title TEXT NOT NULL, source TEXT NOT NULL, url TEXT NOT NULL,
    published TEXT, metadata TEXT NOT NULL, text TEXT NOT NULL, content_hash TEXT NOT NULL,
    indexed_at TEXT NOT NULL, added INTEGER NOT NULL, removed INTEGER, PRIMARY KEY (id, added));
CREATE INDEX documents_source ON documents(source);
CREATE INDEX documents_published ON documents(published);
CREATE TABLE chunks (
    id INTEGER PRIMARY KEY, doc_id TEXT NOT NULL, ordinal INTEGER NOT NULL,
    start INTEGER NOT NULL, "end" INTEGER NOT NULL, text TEXT NOT NULL,
    added INTEGER NOT NULL, removed INTEGER);
CREATE INDEX chunks_doc ON chunks(doc_id);
CREATE TABLE sentences (
    id INTEGER PRIMARY KEY, chunk_id INTEGER NOT NULL, start INTEGER NOT NULL, "end" INTEGER NOT NULL,
    added INTEGER NOT NULL, removed INTEGER);
CREATE INDEX sentences_chunk ON sentences(chunk_id);
"""
# Rows removed and rows of a commit that never happened, found without a scan.
_TAG_INDEXES = "".join(
    f"CREATE INDEX IF NOT EXISTS {t}_removed ON {t}(removed) WHERE removed IS NOT NULL;"
    f"CREATE INDEX IF NOT EXISTS {t}_added ON {t}(added);" for t in TABLES)
# Documents by near-duplicate story (qa.duplicates).
STORY_INDEX = ("CREATE INDEX IF NOT EXISTS documents_story ON documents("
               "json_extract(metadata, '$.story')) WHERE json_extract(metadata, '$.story') IS NOT NULL")
# The columns of each table as a generation shows them (those of the format before tags).
COLUMNS = {
    "documents": "id, title, source, url, published, metadata, text, content_hash, indexed_at",
    "chunks": 'id, doc_id, ordinal, start, "end", text',
    "sentences": 'id, chunk_id, start, "end"',
}


def open_for_writing(path: Path) -> sqlite3.Connection:
    """The database at ``path``, created when absent; ``begin`` starts the writer's transaction."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")  # readers go on reading while a writer works
    db.execute("PRAGMA synchronous = FULL")  # a commit is on disk when it returns
    if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'documents'").fetchone():
        db.executescript(SCHEMA)
    db.executescript(_TAG_INDEXES + STORY_INDEX)
    return db


def begin(db: sqlite3.Connection) -> None:
    db.execute("BEGIN IMMEDIATE")


def checkpoint(db: sqlite3.Connection) -> None:
    """Copy what was committed from the write-ahead log into the database file, where a reader
    that reads the file alone (``immutable``) finds it. Readers are not waited for."""
    db.execute("PRAGMA wal_checkpoint(PASSIVE)")


def open_for_reading(path: Path, generation: int) -> sqlite3.Connection:
    """A read-only connection that sees generation ``generation`` and nothing else."""
    # On a read-only mount nothing can change the file, and SQLite is told so: it then maps no
    # shared memory, which it would map read-only and share with a writer once the mount is
    # writable again. Every commit is checkpointed into the file itself (``checkpoint``).
    read_only_mount = bool(os.statvfs(path.parent).f_flag & os.ST_RDONLY)
    try:
        db = _read_only(path, "mode=ro&immutable=1" if read_only_mount else "mode=ro")
    except sqlite3.OperationalError:  # a folder this user may not write to: the same holds
        db = _read_only(path, "mode=ro&immutable=1")
    for table in TABLES:
        # "+added": nearly every row passes this test, so the index on ``added`` would only
        # stand in the way of the ones a query names (as a listing's order by date).
        db.execute(f"CREATE TEMP VIEW {table} AS SELECT {COLUMNS[table]} FROM main.{table} "
                   f"WHERE +added <= {int(generation)} AND (removed IS NULL OR removed > {int(generation)})")
    return db


def _read_only(path: Path, options: str) -> sqlite3.Connection:
    db = sqlite3.connect(f"file:{path}?{options}", uri=True, check_same_thread=False)
    db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
    return db


def discard_after(db: sqlite3.Connection, generation: int) -> None:
    """Undo whatever generations after ``generation`` wrote: none of them was committed."""
    for table in TABLES:
        db.execute(f"DELETE FROM {table} WHERE added > ?", (generation,))
        db.execute(f"UPDATE {table} SET removed = NULL WHERE removed > ?", (generation,))


def purge_through(db: sqlite3.Connection, generation: int) -> None:
    """Delete rows removed by ``generation`` or before: no generation still kept shows them."""
    for table in TABLES:
        db.execute(f"DELETE FROM {table} WHERE removed <= ?", (generation,))


def remove_document(db: sqlite3.Connection, doc_id: str, generation: int) -> tuple[int, list[int], list[int]]:
    """Remove ``doc_id`` from ``generation`` on: (1 if it was there else 0, its chunk ids, its
    sentence ids).

    Rows this same generation added are deleted outright; older ones are tagged, for the
    generations before to keep showing them.
    """
    documents = db.execute("SELECT COUNT(*) FROM documents WHERE id = ? AND removed IS NULL",
                           (doc_id,)).fetchone()[0]
    chunk_ids = [r[0] for r in db.execute(
        "SELECT id FROM chunks WHERE doc_id = ? AND removed IS NULL", (doc_id,))]
    sentence_ids = [r[0] for r in db.execute(
        "SELECT s.id FROM sentences s JOIN chunks c ON c.id = s.chunk_id "
        "WHERE c.doc_id = ? AND c.removed IS NULL AND s.removed IS NULL", (doc_id,))]
    # "+added": found by the document, never by the index on ``added``, where a large first
    # commit has every row under the one generation it writes.
    db.execute("DELETE FROM sentences WHERE +added = ? AND chunk_id IN "
               "(SELECT id FROM chunks WHERE doc_id = ? AND +added = ?)", (generation, doc_id, generation))
    db.execute("UPDATE sentences SET removed = ? WHERE removed IS NULL AND chunk_id IN "
               "(SELECT id FROM chunks WHERE doc_id = ? AND removed IS NULL)", (generation, doc_id))
    for table, key in (("chunks", "doc_id"), ("documents", "id")):
        db.execute(f"DELETE FROM {table} WHERE {key} = ? AND +added = ?", (doc_id, generation))
        db.execute(f"UPDATE {table} SET removed = ? WHERE {key} = ? AND removed IS NULL", (generation, doc_id))
    return documents, chunk_ids, sentence_ids


def remove_everything(db: sqlite3.Connection, generation: int) -> None:
    for table in TABLES:
        db.execute(f"DELETE FROM {table} WHERE added = ?", (generation,))
        db.execute(f"UPDATE {table} SET removed = ? WHERE removed IS NULL", (generation,))


def live_ids(db: sqlite3.Connection, table: str, from_id: int) -> list[int]:
    """Ids of ``table`` (chunks or sentences) not removed, from ``from_id`` up, in order."""
    return [r[0] for r in db.execute(
        f"SELECT id FROM {table} WHERE removed IS NULL AND id >= ? ORDER BY id", (from_id,))]


def document_hashes(db: sqlite3.Connection, doc_ids: Sequence[str] | None = None) -> dict[str, str]:
    """{id: content hash} of the documents not removed (as the writer's transaction has them),
    of ``doc_ids`` alone when given."""
    if doc_ids is None:
        return dict(db.execute("SELECT id, content_hash FROM documents WHERE removed IS NULL").fetchall())
    found: dict[str, str] = {}
    ids = list(dict.fromkeys(doc_ids))
    for start in range(0, len(ids), _PARAMETERS):
        batch = ids[start:start + _PARAMETERS]
        found.update(db.execute(f"SELECT id, content_hash FROM documents WHERE removed IS NULL AND id IN "
                                f"({','.join('?' * len(batch))})", batch).fetchall())
    return found


def import_legacy(db: sqlite3.Connection, legacy: Path, generation: int) -> None:
    """Copy the rows of an older index's database (format 4 and before) in, as ``generation``'s."""
    db.execute("ATTACH DATABASE ? AS legacy", (str(legacy),))
    try:
        db.execute("BEGIN IMMEDIATE")
        for table in TABLES:
            db.execute(f"INSERT INTO main.{table} ({COLUMNS[table]}, added) "
                       f"SELECT {COLUMNS[table]}, ? FROM legacy.{table}", (generation,))
        db.execute("COMMIT")
    finally:
        if db.in_transaction:
            db.execute("ROLLBACK")
        db.execute("DETACH DATABASE legacy")
