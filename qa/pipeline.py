"""Wires the parts: question -> retrieval -> reading -> a verified, cited Answer.

``Pipeline`` is also the one door to the index for the API and the CLI: ask, read documents,
add, delete, index a corpus.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Callable, Sequence

from . import indexing
from .answer_text import normalize_answer
from .answers import Answer, Candidate, Citation, DocumentFields, Passage
from .cores import CoreShare
from .dates import asks_for_recency
from .documents import Document
from .embedding import Embedder
from .errors import CitationMismatch, InvalidInput, UnknownDocument
from .indexing import IndexReport, index_config, location
from .reading import ExtractiveReader, Reader, SpanGuess
from .retrieval import Filters, FusionConfig, Hit, Mode, Retriever
from .settings import Settings
from .sources import DocumentTexts, arrange, cite, with_passage_support, with_story_copies
from .store import Manifest
from .store.backends import ServedIndex

NOT_FOUND = "The corpus does not seem to answer this question."


class Pipeline:
    """Owns the embedder, the reader and the open index; reopens the index after a commit.

    Writes go through ``indexing``: each is one atomic commit under the index lock, and readers
    (this pipeline too) see it from their next access to ``index``.
    """

    def __init__(self, settings: Settings, embedder: Embedder | None = None, reader: Reader | None = None):
        self.settings = settings
        self.embedder = embedder or Embedder.from_settings(settings)
        self.reader = reader or ExtractiveReader.from_settings(settings)
        self._location = location(settings)
        self._index: ServedIndex | None = None
        self._lock = threading.Lock()
        self._model_slots = threading.BoundedSemaphore(settings.concurrent_reads)
        self._cores = CoreShare(settings.torch_threads)

    @property
    def index(self) -> ServedIndex:
        """The committed index, reopened when a writer has committed a newer generation."""
        index = self._index
        current = self._location.generation()
        if index is None or index.manifest.generation != current:
            with self._lock:
                if self._index is None or self._index.manifest.generation != current:
                    expect = index_config(self.settings, self.embedder)
                    self._index = self._location.open(expect)
                index = self._index
        return index

    def warm_up(self) -> None:
        """Load both models now, so no request (or reported timing) pays for loading them."""
        for _ in range(2):  # a traced model's second call is where torch.jit optimises it
            self.embedder.encode_query("warm up")
            self.reader.read("warm up?", ["A warm up passage."], top_n=1)
        if self.settings.sentence_lexical_weight > 0:
            _ = self.index.sentence_lexical  # built when first used: now, not in a request

    def retriever(self, index: ServedIndex | None = None) -> Retriever:
        s = self.settings
        fusion = FusionConfig(s.fusion, s.dense_weight, s.sentence_weight, s.sentence_lexical_weight,
                              s.rrf_k, s.candidates)
        return Retriever(index or self.index, self.embedder, fusion)

    def validate_question(self, question: str) -> str:
        question = " ".join(str(question).split())
        if not question:
            raise InvalidInput("the question is empty")
        if len(question) > self.settings.max_question_chars:
            raise InvalidInput(
                f"the question is {len(question)} characters long; the limit is "
                f"{self.settings.max_question_chars}")
        return question

    def search(self, question: str, top_k: int | None = None, filters: Filters = Filters(),
               mode: Mode = "hybrid") -> list[Hit]:
        question = self.validate_question(question)
        return self.retriever().search(question, top_k or self.settings.top_k, filters, mode)

    def ask(self, question: str, top_k: int | None = None, filters: Filters = Filters(),
            mode: Mode = "hybrid", prefer_recent: bool | None = None) -> Answer:
        """The answer from the index. ``prefer_recent`` ranks newer documents up for this question;
        None leaves it to the setting, and to whether the question asks for the latest."""
        question = self.validate_question(question)
        top_k = top_k or self.settings.top_k
        if not 1 <= top_k <= 100:
            raise InvalidInput("top_k must be between 1 and 100")
        with self._cores.shared(), self._model_slots:
            started = time.perf_counter()
            index = self.index
            latest = asks_for_recency(question)
            recent = (latest and prefer_recent is not False) or (
                self.settings.prefer_recent if prefer_recent is None else prefer_recent)
            hits = self.retriever(index).search(question, top_k, filters, mode,
                                                self.settings.recency_weight if recent else 0.0)
            retrieved = time.perf_counter()
            read = hits[: self.settings.reader_passages]
            # The passages list shows titles and dates; only cited documents need their text.
            documents = index.documents(sorted({h.chunk.doc_id for h in hits}), with_text=False)
            # "The latest" is a comparison of reports of different days: all of them are read.
            compare = latest and _dates_differ(documents, read)
            self._cores.take_share()
            guesses, read_count = self._read(question, read, self.settings.reader_early_stop and not compare)
            finished = time.perf_counter()
        if self.settings.reader_rerank:
            hits = _reranked_by_reader(hits, guesses, read_count)
        texts = DocumentTexts(index)
        documents.update(texts.get({read[g.passage_index].chunk.doc_id for g in guesses}))
        candidates = [with_passage_support(c, hits, texts) if c.confidence >= self.settings.abstain_below else c
                      for c in _merge([_cite(g, read, documents) for g in guesses])]
        candidates = with_story_copies(candidates, texts)
        timings = {"retrieve": (retrieved - started) * 1000, "read": (finished - retrieved) * 1000}
        timings["total"] = (time.perf_counter() - started) * 1000
        return _answer(question, candidates, hits, documents, timings,
                       abstain_below=self.settings.abstain_below, alternatives=self.settings.alternatives)

    def document(self, doc_id: str) -> Document:
        """One indexed document, text included; UnknownDocument when there is none with that id."""
        return self.index.document(doc_id)

    def list_documents(self, *, offset: int = 0, limit: int = 50, sources: Sequence[str] = (),
                       since: date | None = None, until: date | None = None) -> tuple[int, list[dict]]:
        """How many documents match, and one page of their summaries, newest first."""
        return self.index.list_documents(offset=offset, limit=limit, sources=sources,
                                         since=since.isoformat() if since else None,
                                         until=until.isoformat() if until else None)

    def manifest(self) -> Manifest:
        """What the committed index holds; IndexMissing when there is none yet."""
        return self.index.manifest

    def add(self, documents: Sequence[Document], *, rebuild: bool = False,
            progress: bool = False) -> IndexReport:
        """Add ``documents``, replacing those with the same id, in one commit. Unchanged ones
        are not embedded again; ``rebuild`` starts from an empty index instead."""
        if not documents:
            raise InvalidInput("no documents to add")
        if len({d.id for d in documents}) != len(documents):
            raise InvalidInput("document ids in one request must be unique")
        with self._cores.shared():
            return indexing.write_documents(documents, self.settings, self.embedder, rebuild=rebuild,
                                            progress=progress)

    def delete(self, doc_ids: Sequence[str]) -> IndexReport:
        """Delete ``doc_ids`` in one commit; UnknownDocument, and nothing deleted, when one of
        them is not in the committed index."""
        if not doc_ids:
            raise InvalidInput("no document ids to delete")
        known = self.index.documents(list(doc_ids), with_text=False)
        for doc_id in doc_ids:
            if doc_id not in known:
                raise UnknownDocument(f"no document with id {doc_id!r}")
        return indexing.write_documents([], self.settings, self.embedder, delete_ids=doc_ids)

    def index_corpus(self, corpus: Path, *, rebuild: bool = False, progress: bool = False,
                     log: Callable[[str], None] = lambda _: None) -> IndexReport:
        """Bring the index up to date with the files under ``corpus`` (see ``indexing.index_corpus``)."""
        with self._cores.shared():
            return indexing.index_corpus(Path(corpus), self.settings, self.embedder, rebuild=rebuild,
                                         progress=progress, log=log)

    def _read(self, question: str, hits: list[Hit], early_stop: bool) -> tuple[list[SpanGuess], int]:
        """The reader's guesses over ``hits``, most confident first, and how many hits it read.

        With early stopping the best passage is read alone first; when its answer already clears
        the abstention threshold the others are not read. Each passage is scored on its own, so
        reading in two steps ranks the same spans as reading all at once.
        """
        top_n = self.settings.alternatives + 4
        if not hits:
            return [], 0
        first = hits[:1] if early_stop else hits
        guesses = self.reader.read(question, [h.chunk.text for h in first], top_n=top_n)
        rest = hits[len(first):]
        if not rest or (guesses and guesses[0].confidence >= self.settings.abstain_below):
            return guesses, len(first)
        more = self.reader.read(question, [h.chunk.text for h in rest], top_n=top_n)
        shifted = [replace(g, passage_index=g.passage_index + len(first)) for g in more]
        return sorted(guesses + shifted, key=lambda g: -g.confidence)[:top_n], len(hits)


def _dates_differ(documents: dict[str, Document], hits: list[Hit]) -> bool:
    return len({documents[h.chunk.doc_id].published for h in hits} - {None}) > 1


def _reranked_by_reader(hits: list[Hit], guesses: list[SpanGuess], read_count: int) -> list[Hit]:
    """The first ``read_count`` hits ordered by retrieval score plus the reader's best confidence
    in each (0 where it found nothing among its top guesses); the rest as they were.

    Retrieval often ranks a neighbouring paragraph of the same article first; the reader tells
    which one actually holds an answer. Adding the confidence unweighted was as good as any weight
    tried (docs/decisions.md).
    """
    if read_count < 2:
        return hits
    best = [0.0] * read_count
    for guess in guesses:
        best[guess.passage_index] = max(best[guess.passage_index], guess.confidence)
    order = sorted(range(read_count), key=lambda i: -(hits[i].score + best[i]))
    return [hits[i] for i in order] + hits[read_count:]


def _cite(guess: SpanGuess, hits: list[Hit], documents: dict[str, Document]) -> tuple[float, Citation]:
    chunk = hits[guess.passage_index].chunk
    doc = documents[chunk.doc_id]
    start, end = chunk.start + guess.start, chunk.start + guess.end
    citation = cite(doc, start, end)
    if citation.quote != chunk.text[guess.start:guess.end]:
        raise CitationMismatch(f"chunk {chunk.id} of {doc.id!r} no longer matches its document's text")
    return guess.confidence, citation


def _merge(cited: list[tuple[float, Citation]]) -> list[Candidate]:
    """One candidate per distinct answer, citing each document it was found in once.

    ``cited`` comes most confident first. A span overlapping a more confident one in the
    same document is a variant of it ("in Quillon" next to "Quillon"), not an alternative.
    """
    taken: list[Citation] = []
    groups: dict[str, list[tuple[float, Citation]]] = {}
    for confidence, citation in cited:
        if any(t.doc_id == citation.doc_id and t.start < citation.end and citation.start < t.end
               for t in taken):
            continue
        taken.append(citation)
        key = normalize_answer(citation.quote) or citation.quote
        group = groups.setdefault(key, [])
        if all(c.doc_id != citation.doc_id for _, c in group):
            group.append((confidence, citation))
    candidates = [Candidate(text=items[0][1].quote, confidence=round(items[0][0], 4),
                            citations=[c for _, c in items]) for items in groups.values()]
    return sorted(candidates, key=lambda c: -c.confidence)


def _answer(question: str, candidates: list[Candidate], hits: list[Hit], documents: dict[str, Document],
            timings: dict[str, float], *, abstain_below: float, alternatives: int) -> Answer:
    passages = [
        Passage(**DocumentFields.of(documents[h.chunk.doc_id]), chunk_id=h.chunk.id, start=h.chunk.start,
                end=h.chunk.end, text=h.chunk.text, score=round(h.score, 4))
        for h in hits]
    timings = {k: round(v, 2) for k, v in timings.items()}
    if not candidates or candidates[0].confidence < abstain_below:
        return Answer(question=question, text=None, confidence=candidates[0].confidence if candidates else 0.0,
                      abstained=True, message=NOT_FOUND, citations=[],
                      alternatives=candidates[: alternatives + 1], passages=passages,
                      timings_ms=timings)
    (best, *conflicts), rest = arrange(candidates, abstain_below)
    return Answer(question=question, text=best.text, confidence=best.confidence, abstained=False,
                  message="", citations=best.citations, sources=best.sources, conflicts=conflicts,
                  alternatives=rest[:alternatives], passages=passages, timings_ms=timings)
