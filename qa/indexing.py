"""Bring an index up to date with a corpus: only new or changed documents are embedded."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from .chunking import Chunk, Chunker
from .documents import Document
from .duplicates import with_story_ids
from .embedding import Embedder
from .loaders import Skipped, load_corpus
from .sentences import sentence_spans
from .settings import Settings
from .store import IndexConfig, IndexedDocument, IndexedSentence, Manifest, indexed_text
from .store.backends import IndexLocation, MilvusAddress, index_location


@dataclass
class IndexReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    chunks_embedded: int = 0
    sentences_embedded: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    manifest: Manifest | None = None

    def summary(self) -> str:
        return (f"{self.added} added, {self.updated} updated, {self.unchanged} unchanged, "
                f"{self.removed} removed, {len(self.skipped)} skipped")


def index_config(settings: Settings, embedder: Embedder) -> IndexConfig:
    return IndexConfig(settings.model, embedder.dimension, settings.chunk_tokens, settings.chunk_overlap,
                       settings.sentence_vectors)


def location(settings: Settings) -> IndexLocation:
    """Where the configured backend keeps the index."""
    token = settings.milvus_token.get_secret_value() if settings.milvus_token else None
    return index_location(settings.backend, index_dir=settings.index_dir, milvus=MilvusAddress(
        settings.milvus_uri, settings.milvus_collection, token, settings.milvus_timeout_s))


def make_chunker(settings: Settings, embedder: Embedder) -> Chunker:
    tokens = min(settings.chunk_tokens, embedder.max_tokens)
    return Chunker(embedder.tokenizer, tokens, settings.chunk_overlap)


class _Clock:
    def __init__(self, seconds: dict[str, float]):
        self.seconds = seconds

    def add(self, stage: str, started: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - started


def index_corpus(corpus: Path, settings: Settings, embedder: Embedder, *, rebuild: bool = False,
                 progress: bool = False, log: Callable[[str], None] = lambda _: None) -> IndexReport:
    """Index every document under ``corpus``; documents no longer there are removed."""
    report = IndexReport()
    clock = _Clock(report.seconds)
    started = time.perf_counter()
    loaded = load_corpus(Path(corpus), max_file_bytes=settings.max_file_bytes)
    clock.add("load", started)
    report.skipped = loaded.skipped
    for skip in loaded.skipped:
        log(str(skip))
    # A file that fails to load this time keeps the version indexed before.
    keep = {skip.path for skip in loaded.skipped}
    documents = with_story_ids(loaded.documents)
    return write_documents(documents, settings, embedder, report=report, rebuild=rebuild,
                           remove_missing=True, keep_ids=keep, progress=progress, log=log)


def write_documents(documents: Sequence[Document], settings: Settings, embedder: Embedder, *,
                    report: IndexReport | None = None, rebuild: bool = False,
                    remove_missing: bool = False, keep_ids: set[str] = frozenset(),
                    delete_ids: Sequence[str] = (), progress: bool = False,
                    log: Callable[[str], None] = lambda _: None) -> IndexReport:
    """Add or replace ``documents`` (and delete ``delete_ids``) in one atomic commit."""
    report = report or IndexReport()
    clock = _Clock(report.seconds)
    with location(settings).writer(index_config(settings, embedder), rebuild=rebuild) as writer:
        # Only a write that removes what it was not given needs every stored document's hash.
        known = writer.document_hashes(None if remove_missing else
                                       [d.id for d in documents] + list(delete_ids))
        changed = [d for d in documents if known.get(d.id) != d.content_hash]
        report.added = sum(1 for d in changed if d.id not in known)
        report.updated = len(changed) - report.added
        report.unchanged = len(documents) - len(changed)
        wanted = {d.id for d in documents}
        gone = set(delete_ids) & known.keys()
        if remove_missing:
            gone |= {i for i in known if i not in wanted and i not in keep_ids}
        report.removed = len(gone)
        if not changed and not gone and writer.previous is not None:
            return report  # nothing to commit

        started = time.perf_counter()
        chunker = make_chunker(settings, embedder)
        chunked = [(doc, chunker.split(doc)) for doc in changed]
        clock.add("chunk", started)

        sentences = [chunk_sentences(chunks, settings) for _, chunks in chunked]
        texts, sentence_texts = texts_to_embed(chunked, sentences)
        log(f"embedding {len(texts)} chunks and {len(sentence_texts)} sentences "
            f"of {len(changed)} documents")
        started = time.perf_counter()
        vectors = embedder.encode(texts + sentence_texts, progress=progress)
        clock.add("embed", started)
        report.chunks_embedded = len(texts)
        report.sentences_embedded = len(sentence_texts)

        started = time.perf_counter()
        writer.delete(sorted(gone))
        chunk_vectors, sentence_vectors = vectors[:len(texts)], vectors[len(texts):]
        for (doc, chunks), found in zip(chunked, sentences):
            writer.upsert(IndexedDocument(doc, chunks, chunk_vectors[:len(chunks)],
                                          found, sentence_vectors[:len(found)]))
            chunk_vectors, sentence_vectors = chunk_vectors[len(chunks):], sentence_vectors[len(found):]
        report.manifest = writer.commit()
        clock.add("write", started)
    return report


def texts_to_embed(chunked: Sequence[tuple[Document, Sequence[Chunk]]],
                   sentences: Sequence[Sequence[IndexedSentence]]) -> tuple[list[str], list[str]]:
    """What the embedder reads: "title + text" of every chunk, and of every sentence."""
    texts = [indexed_text(doc.title, c.text) for doc, chunks in chunked for c in chunks]
    sentence_texts = [indexed_text(doc.title, chunks[s.chunk_index].text[s.start:s.end])
                      for (doc, chunks), found in zip(chunked, sentences) for s in found]
    return texts, sentence_texts


def chunk_sentences(chunks: Sequence[Chunk], settings: Settings) -> list[IndexedSentence]:
    """Every sentence of every chunk: each gets its own vector, for matching a question to the
    one sentence that answers it (a chunk's vector blurs several topics). An empty list when
    the index is built without sentence vectors."""
    if not settings.sentence_vectors:
        return []
    return [IndexedSentence(number, start, end)
            for number, chunk in enumerate(chunks) for start, end in sentence_spans(chunk.text)]
