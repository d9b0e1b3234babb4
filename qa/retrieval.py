"""Hybrid retrieval: four signals fused into one ranking of chunks.

- dense: the chunk's vector against the question's (FAISS),
- sentence: the best of the chunk's sentence vectors (the one sentence that answers),
- lexical: BM25 over the chunk text,
- sentence lexical: the best BM25 score of the chunk's sentences (the question's words close
  together, in one sentence).

A ``SearchBackend`` (qa.store) finds the candidates and scores them; the fusion is here, the
same whatever the backend.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from .duplicates import STORY
from .embedding import Embedder
from .store import Candidates, Filters, SearchBackend, Signal, StoredChunk
from .store.protocol import SIGNALS

Mode = Literal["hybrid", "dense", "lexical"]


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
    def __init__(self, index: SearchBackend, embedder: Embedder, fusion: FusionConfig):
        self.index = index
        self.embedder = embedder
        self.with_sentences = index.with_sentences
        self.fusion = fusion if self.with_sentences else fusion.without_sentence_vectors()

    def search(self, question: str, top_k: int, filters: Filters = Filters(),
               mode: Mode = "hybrid", recency_weight: float = 0.0) -> list[Hit]:
        """The best ``top_k`` chunks; with ``recency_weight``, newer documents move up (see _fresher_first)."""
        n = min(max(self.fusion.candidates, top_k * 3), self.index.chunk_count)
        if n == 0:
            return []
        signals = self._signals(mode)
        query = self.embedder.encode_query(question) if {"dense", "sentence"} & set(signals) else None
        found = self.index.candidates(question, query, n, filters, signals)
        ranked = self._rank(found, mode)
        if recency_weight > 0:
            ranked = _fresher_first(self.index, ranked, recency_weight)
        return _without_overlaps(self.index, ranked, top_k)

    def _signals(self, mode: Mode) -> tuple[Signal, ...]:
        if mode != "hybrid":
            return ("dense",) if mode == "dense" else ("lexical",)
        return ("dense", *(("sentence",) if self.with_sentences else ()), "lexical",
                *(("sentence_lexical",) if self.fusion.sentence_lexical_weight > 0 else ()))

    def _rank(self, found: Candidates,
              mode: Mode) -> list[tuple[int, float, tuple[float, float, float, float]]]:
        """(chunk id, fused score, (dense, sentence, lexical, sentence lexical scores)), best first."""
        if mode != "hybrid":
            scores = found.scores["dense" if mode == "dense" else "lexical"].tolist()
            position = 0 if mode == "dense" else 2
            return [(i, s, tuple(s if k == position else 0.0 for k in range(4)))
                    for i, s in zip(found.chunk_ids, scores)]
        if not found.chunk_ids:
            return []
        absent = np.zeros(len(found.chunk_ids))
        signals = tuple(found.scores.get(name, absent) for name in SIGNALS)
        if self.fusion.method == "rrf":
            fused = sum(_rrf(scores, self.fusion.rrf_k) for name, scores in zip(SIGNALS, signals)
                        if name in found.scores)
        else:
            fused = sum(w * _min_max(scores) for w, scores in zip(self.fusion.weights, signals))
        order = np.argsort(-fused, kind="stable")
        return [(found.chunk_ids[j], float(fused[j]), tuple(float(scores[j]) for scores in signals))
                for j in order]


def _fresher_first(index: SearchBackend, ranked, weight: float):
    """Ranked anew with ``weight`` of the score range added in proportion to how recent each
    candidate's document is (its published day between the oldest and the newest candidate's);
    undated documents get nothing added."""
    if len(ranked) < 2:
        return ranked
    doc_of = {c.id: c.doc_id for c in index.chunks([r[0] for r in ranked])}
    published = {doc_id: doc.published for doc_id, doc in
                 index.documents(sorted(set(doc_of.values())), with_text=False).items() if doc.published}
    days = {chunk_id: published[doc_id].toordinal() for chunk_id, doc_id in doc_of.items() if doc_id in published}
    if len(set(days.values())) < 2:
        return ranked
    oldest, newest = min(days.values()), max(days.values())
    spread = ranked[0][1] - min(r[1] for r in ranked) or 1.0
    boosted = [(chunk_id, score + weight * spread * (days[chunk_id] - oldest) / (newest - oldest)
                if chunk_id in days else score, signals) for chunk_id, score, signals in ranked]
    return sorted(boosted, key=lambda r: -r[1])


def _rrf(scores: np.ndarray, k: int) -> np.ndarray:
    ranks = np.empty(len(scores))
    ranks[np.argsort(-scores, kind="stable")] = np.arange(1, len(scores) + 1)
    return 1.0 / (k + ranks)


def _min_max(scores: np.ndarray) -> np.ndarray:
    low, high = float(scores.min()), float(scores.max())
    if high - low < 1e-12:
        return np.zeros_like(scores)
    return (scores - low) / (high - low)


def _without_overlaps(index: SearchBackend, ranked, top_k: int) -> list[Hit]:
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


def _stories(index: SearchBackend, doc_ids: set[str]) -> dict[str, str]:
    """Document id -> its story id (its own id when it has no copies)."""
    documents = index.documents(sorted(doc_ids), with_text=False)
    return {doc_id: str(documents[doc_id].metadata.get(STORY, doc_id)) if doc_id in documents else doc_id
            for doc_id in doc_ids}
