"""Segments: the immutable pieces of a local index that hold vectors and word counts.

A commit writes at most one segment: the chunks it added, or those merged with the newest
segments when the merge policy says so. Chunk ids only grow, so each segment holds a range of
ids above those of the segments before it. Rows deleted since a segment was written stay in
it, left out of every search, until a merge rewrites it without them.

    segments/seg-000012/   chunks.faiss, sentences.faiss (VectorIndex), words.npz (WordCounts)
"""

from __future__ import annotations

import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..lexical import count_words
from ..word_counts import WordCounts
from .protocol import indexed_text
from .vectors import VectorIndex

SEGMENTS = "segments"
_CHUNKS, _SENTENCES, _WORDS = "chunks.faiss", "sentences.faiss", "words.npz"
# A new segment is merged with the one before it while that one holds no more rows than it:
# segments double in size, so a row is rewritten about log2(writes) times, and a one-document
# commit merges little but now and then.
MERGE_RATIO = 1.0


@dataclass
class Segment:
    name: str
    chunks: VectorIndex
    sentences: VectorIndex
    words: WordCounts
    identity: tuple = ()  # of the folder it was read from (``folder_identity``)

    @property
    def rows(self) -> int:
        return len(self.words.ids)

    @classmethod
    def load(cls, directory: Path) -> Segment:
        identity = folder_identity(directory)
        return cls(directory.name, VectorIndex.read(directory / _CHUNKS), VectorIndex.read(directory / _SENTENCES),
                   WordCounts.load(directory / _WORDS), identity)

    def write(self, segments_dir: Path) -> Path:
        """Write under ``segments_dir`` (through a ``.tmp`` folder, renamed when whole); the caller fsyncs."""
        final = segments_dir / self.name
        staging = segments_dir / f"{self.name}.tmp"
        if staging.exists():  # left by a writer that died
            shutil.rmtree(staging)
        staging.mkdir(parents=True)
        self.chunks.write(staging / _CHUNKS)
        self.sentences.write(staging / _SENTENCES)
        self.words.save(staging / _WORDS)
        staging.rename(final)
        return final


def folder_identity(directory: Path) -> tuple:
    """Which folder this is: a segment of the same name in an index made anew is another one."""
    status = directory.stat()
    return status.st_dev, status.st_ino, status.st_mtime_ns


def segment_name(number: int) -> str:
    return f"seg-{number:06d}"


def to_merge(sizes: Sequence[int]) -> int:
    """How many of the newest segments (rows each, oldest first) to merge into one: 1 is none."""
    merged, count = sizes[-1], 1
    while count < len(sizes) and sizes[-count - 1] <= MERGE_RATIO * merged:
        merged += sizes[-count - 1]
        count += 1
    return count


def merged(name: str, parts: Sequence[Segment], live_chunks: np.ndarray, live_sentences: np.ndarray,
           dimension: int) -> Segment:
    """One segment of the rows of ``parts`` whose ids are live, in the order they were."""
    chunks, sentences = VectorIndex.empty(dimension), VectorIndex.empty(dimension)
    keep = []
    for part in parts:
        chunks.add_live_of(part.chunks, live_chunks)
        sentences.add_live_of(part.sentences, live_sentences)
        keep.append(np.isin(part.words.ids, live_chunks))
    return Segment(name, chunks, sentences, WordCounts.merged([p.words for p in parts], keep))


def legacy_segment(directory: Path, db: sqlite3.Connection, name: str) -> Segment:
    """The files of an older generation (format 4 and before, ``db`` its database) as one segment."""
    words = WordCounts.load_legacy(directory / "bm25")
    if words is None:  # format 3 saved no words: they are counted again from the chunks
        found = db.execute("SELECT c.id, d.title, c.text FROM chunks c JOIN documents d ON d.id = c.doc_id "
                           "ORDER BY c.id").fetchall()
        words = count_words([indexed_text(title, text) for _, title, text in found], [r[0] for r in found])
    return Segment(name, VectorIndex.read(directory / "vectors.faiss"), VectorIndex.read(directory / "sentences.faiss"),
                   words)
