"""Hybrid retrieval: four signals fused into one ranking of chunks.

- dense: the chunk's vector against the question's (FAISS),
- sentence: the best of the chunk's sentence vectors (the one sentence that answers),
- lexical: BM25 over the chunk text,
- sentence lexical: the best BM25 score of the chunk's sentences (the question's words close
  together, in one sentence).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from typing import Literal

import numpy as np

from . import vectors
from .duplicates import STORY
from .embedding import Embedder
from .errors import InvalidInput
from .store import IndexReader, StoredChunk

Mode = Literal["hybrid", "dense", "lexical"]


@dataclass(frozen=True)
class Filters:
    sources: tuple[str, ...] = ()
    doc_ids: tuple[str, ...] = ()
    since: date | None = None
    until: date | None = None

    def __post_init__(self) -> None:
        if self.since and self.until and self.since > self.until:
            raise InvalidInput("filter 'since' is after 'until'")

    @property
    def active(self) -> bool:
        return bool(self.sources or self.doc_ids or self.since or self.until)


@dataclass(frozen=True)
class Hit:
    chunk: StoredChunk
    score: float
    dense_score: float
    sentence_score: float
    lexical_score: float
    sentence_lexical_score: float


@dataclass(frozen=True)
class FusionConfig:
    method: Literal["rrf", "convex"] = "convex"
    dense_weight: float = 0.2
    sentence_weight: float = 0.4
    sentence_lexical_weight: float = 0.0  # off unless weighted; chunk BM25 gets the rest
    rrf_k: int = 60
    candidates: int = 50

    @property
    def weights(self) -> tuple[float, float, float, float]:
        """Of the dense, sentence, lexical and sentence lexical signals."""
        rest = 1 - self.dense_weight - self.sentence_weight - self.sentence_lexical_weight
        return self.dense_weight, self.sentence_weight, rest, self.sentence_lexical_weight

    def without_sentence_vectors(self) -> FusionConfig:
        """For an index built without sentence vectors: their weight goes to the chunk vectors."""
        return replace(self, dense_weight=self.dense_weight + self.sentence_weight, sentence_weight=0.0)


class Retriever:
    def __init__(self, index: IndexReader, embedder: Embedder, fusion: FusionConfig):
        self.index = index
        self.embedder = embedder
        self.with_sentences = index.manifest.sentence_vectors
        self.fusion = fusion if self.with_sentences else fusion.without_sentence_vectors()

    def search(self, question: str, top_k: int, filters: Filters = Filters(),
               mode: Mode = "hybrid") -> list[Hit]:
        allowed = self._allowed_chunk_ids(filters)
        if allowed is not None and len(allowed) == 0:
            return []
        n = min(max(self.fusion.candidates, top_k * 3), self.index.dense.ntotal)
        if n == 0:
            return []
        mask = self._chunk_mask(allowed)
        lexical = self._lexical_scores(question, mask) if mode != "dense" else None
        sentence_lexical = (self._sentence_lexical_scores(question, mask)
                            if mode == "hybrid" and self.fusion.sentence_lexical_weight > 0 else None)
        query = self.embedder.encode_query(question) if mode != "lexical" else None
        ranked = self._rank(query, lexical, sentence_lexical, allowed, n, mode)
        return _without_overlaps(self.index, ranked, top_k)

    def _allowed_chunk_ids(self, filters: Filters) -> np.ndarray | None:
        if not filters.active:
            return None
        return self.index.chunk_ids_matching(
            sources=filters.sources, doc_ids=filters.doc_ids,
            since=filters.since.isoformat() if filters.since else None,
            until=filters.until.isoformat() if filters.until else None)

    def _chunk_mask(self, allowed: np.ndarray | None) -> np.ndarray | None:
        """1 for the BM25 rows of allowed chunks, 0 elsewhere; None when every chunk is allowed."""
        if allowed is None:
            return None
        mask = np.zeros(len(self.index.lexical.ids), dtype=np.float32)
        mask[[self.index.chunk_row(int(i)) for i in allowed]] = 1.0
        return mask

    def _lexical_scores(self, question: str, mask: np.ndarray | None) -> np.ndarray:
        """BM25 score of each chunk, in BM25 row order."""
        return self.index.lexical.scores(question, mask)

    def _sentence_lexical_scores(self, question: str, mask: np.ndarray | None) -> np.ndarray:
        """The best BM25 score among each chunk's sentences, in chunk BM25 row order."""
        best = np.zeros(len(self.index.lexical.ids), dtype=np.float32)
        np.maximum.at(best, self.index.sentence_chunk_rows, self.index.sentence_lexical.scores(question))
        return best if mask is None else best * mask

    def _dense_top(self, query: np.ndarray, allowed: np.ndarray | None, n: int) -> dict[int, float]:
        scores, ids = vectors.search(self.index.dense, query, n, allowed)
        return {int(i): float(s) for i, s in zip(ids, scores)}

    def _sentence_top(self, query: np.ndarray, allowed: np.ndarray | None, n: int) -> dict[int, float]:
        """Chunk id -> its best sentence's score, for the chunks of the ``n`` best sentences."""
        if allowed is not None:
            allowed = self.index.sentence_ids_of_chunks(allowed)
        scores, ids = vectors.search(self.index.sentences, query, n, allowed)
        best: dict[int, float] = {}
        for chunk_id, score in zip(self.index.chunk_of_sentences(ids).tolist(), scores.tolist()):
            best.setdefault(chunk_id, score)  # FAISS returns the best first
        return best

    def _top_of(self, scores: np.ndarray, n: int) -> dict[int, float]:
        """Chunk id -> score of the ``n`` best chunks by a score per BM25 row (zeros left out)."""
        chunk_ids = self.index.lexical.ids
        return {int(chunk_ids[r]): float(scores[r]) for r in _top_rows(scores, n) if scores[r] > 0}

    def _rank(self, query, lexical, sentence_lexical, allowed, n: int,
              mode: Mode) -> list[tuple[int, float, tuple[float, float, float, float]]]:
        """(chunk id, fused score, (dense, sentence, lexical, sentence lexical scores)), best first."""
        dense = self._dense_top(query, allowed, n) if query is not None else {}
        lexical_top = self._top_of(lexical, n) if lexical is not None else {}
        if mode == "dense":
            return [(i, s, (s, 0.0, 0.0, 0.0)) for i, s in dense.items()]
        if mode == "lexical":
            return [(i, s, (0.0, 0.0, s, 0.0)) for i, s in lexical_top.items()]

        # Several sentences of one chunk may rank high: look deeper to reach ``n`` chunks.
        sentence = self._sentence_top(query, allowed, 4 * n) if self.with_sentences else {}
        sentence_lexical_top = self._top_of(sentence_lexical, n) if sentence_lexical is not None else {}
        union = list(dict.fromkeys([*dense, *lexical_top, *list(sentence)[:n], *sentence_lexical_top]))
        rows = [self.index.chunk_row(i) for i in union]
        dense_scores = np.array([dense[i] if i in dense else self._cosine(query, i) for i in union])
        # A chunk none of whose sentences came back scores as the last sentence that did.
        floor = min(sentence.values(), default=0.0)
        sentence_scores = np.array([sentence.get(i, floor) for i in union])
        signals = (dense_scores, sentence_scores, lexical[rows].astype(np.float64),
                   sentence_lexical[rows].astype(np.float64) if sentence_lexical is not None
                   else np.zeros(len(union)))
        if self.fusion.method == "rrf":
            used = (True, self.with_sentences, True, sentence_lexical is not None)
            fused = sum(_rrf(scores, self.fusion.rrf_k) for scores, on in zip(signals, used) if on)
        else:
            fused = sum(w * _min_max(scores) for w, scores in zip(self.fusion.weights, signals))
        order = np.argsort(-fused, kind="stable")
        return [(union[j], float(fused[j]), tuple(float(scores[j]) for scores in signals))
                for j in order]

    def _cosine(self, query: np.ndarray, chunk_id: int) -> float:
        return float(self.index.dense.reconstruct(chunk_id) @ query)


def _top_rows(scores: np.ndarray, n: int) -> np.ndarray:
    n = min(n, len(scores))
    rows = np.argpartition(-scores, n - 1)[:n]
    return rows[np.argsort(-scores[rows], kind="stable")]


def _rrf(scores: np.ndarray, k: int) -> np.ndarray:
    ranks = np.empty(len(scores))
    ranks[np.argsort(-scores, kind="stable")] = np.arange(1, len(scores) + 1)
    return 1.0 / (k + ranks)


def _min_max(scores: np.ndarray) -> np.ndarray:
    low, high = float(scores.min()), float(scores.max())
    if high - low < 1e-12:
        return np.zeros_like(scores)
    return (scores - low) / (high - low)


def _without_overlaps(index: IndexReader, ranked, top_k: int) -> list[Hit]:
    """Keep the best of overlapping chunks of one document, and the best copy of a story told
    by several documents (see duplicates.py); stop at ``top_k`` hits."""
    hits: list[Hit] = []
    window = ranked[: max(top_k * 3, top_k + 10)]
    chunks = {c.id: c for c in index.chunks([r[0] for r in window])}
    story = _stories(index, {c.doc_id for c in chunks.values()})
    for chunk_id, score, signals in window:
        chunk = chunks.get(chunk_id)
        if chunk is None:
            continue
        if any(h.chunk.doc_id == chunk.doc_id and h.chunk.start < chunk.end and chunk.start < h.chunk.end
               for h in hits):
            continue
        if any(h.chunk.doc_id != chunk.doc_id and story[h.chunk.doc_id] == story[chunk.doc_id]
               for h in hits):
            continue
        hits.append(Hit(chunk, score, *signals))
        if len(hits) == top_k:
            break
    return hits


def _stories(index: IndexReader, doc_ids: set[str]) -> dict[str, str]:
    """Document id -> its story id (its own id when it has no copies)."""
    documents = index.documents(sorted(doc_ids), with_text=False)
    return {doc_id: str(documents[doc_id].metadata.get(STORY, doc_id)) if doc_id in documents else doc_id
            for doc_id in doc_ids}
