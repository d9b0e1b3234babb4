"""Hybrid retrieval: three signals fused into one ranking of chunks.

- dense: the chunk's vector against the question's (FAISS),
- sentence: the best of the chunk's sentence vectors (the one sentence that answers),
- lexical: BM25 over the chunk text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal

import numpy as np

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


@dataclass(frozen=True)
class FusionConfig:
    method: Literal["rrf", "convex"] = "convex"
    dense_weight: float = 0.2
    sentence_weight: float = 0.4  # BM25 gets the rest
    rrf_k: int = 60
    candidates: int = 50


class Retriever:
    def __init__(self, index: IndexReader, embedder: Embedder, fusion: FusionConfig):
        self.index = index
        self.embedder = embedder
        self.fusion = fusion

    def search(self, question: str, top_k: int, filters: Filters = Filters(),
               mode: Mode = "hybrid") -> list[Hit]:
        allowed = self._allowed_chunk_ids(filters)
        if allowed is not None and len(allowed) == 0:
            return []
        n = min(max(self.fusion.candidates, top_k * 3), self.index.dense.ntotal)
        if n == 0:
            return []
        lexical = self._lexical_scores(question, allowed) if mode != "dense" else None
        query = self.embedder.encode_query(question) if mode != "lexical" else None
        ranked = self._rank(query, lexical, allowed, n, mode)
        return _without_overlaps(self.index, ranked, top_k)

    def _allowed_chunk_ids(self, filters: Filters) -> np.ndarray | None:
        if not filters.active:
            return None
        return self.index.chunk_ids_matching(
            sources=filters.sources, doc_ids=filters.doc_ids,
            since=filters.since.isoformat() if filters.since else None,
            until=filters.until.isoformat() if filters.until else None)

    def _lexical_scores(self, question: str, allowed: np.ndarray | None) -> np.ndarray:
        mask = None
        if allowed is not None:
            mask = np.zeros(len(self.index.lexical.chunk_ids), dtype=np.float32)
            mask[[self.index.chunk_row(int(i)) for i in allowed]] = 1.0
        return self.index.lexical.scores(question, mask)

    def _dense_top(self, query: np.ndarray, allowed: np.ndarray | None, n: int) -> dict[int, float]:
        scores, ids = _search(self.index.dense, query, allowed, n)
        return {int(i): float(s) for i, s in zip(ids, scores)}

    def _sentence_top(self, query: np.ndarray, allowed: np.ndarray | None, n: int) -> dict[int, float]:
        """Chunk id -> its best sentence's score, for the chunks of the ``n`` best sentences."""
        if allowed is not None:
            allowed = self.index.sentence_ids_of_chunks(allowed)
        scores, ids = _search(self.index.sentences, query, allowed, n)
        best: dict[int, float] = {}
        for chunk_id, score in zip(self.index.chunk_of_sentences(ids).tolist(), scores.tolist()):
            best.setdefault(chunk_id, score)  # FAISS returns the best first
        return best

    def _rank(self, query, lexical, allowed, n: int, mode: Mode) -> list[tuple[int, float, float, float, float]]:
        """(chunk id, fused score, dense, sentence and lexical scores), best first."""
        chunk_ids = self.index.lexical.chunk_ids
        dense = self._dense_top(query, allowed, n) if query is not None else {}
        lexical_top: dict[int, float] = {}
        if lexical is not None:
            rows = _top_rows(lexical, n)
            lexical_top = {int(chunk_ids[r]): float(lexical[r]) for r in rows if lexical[r] > 0}
        if mode == "dense":
            return [(i, s, s, 0.0, 0.0) for i, s in dense.items()]
        if mode == "lexical":
            return [(i, s, 0.0, 0.0, s) for i, s in lexical_top.items()]

        # Several sentences of one chunk may rank high: look deeper to reach ``n`` chunks.
        sentence = self._sentence_top(query, allowed, 4 * n)
        union = list(dict.fromkeys([*dense, *lexical_top, *list(sentence)[:n]]))
        dense_scores = np.array([dense[i] if i in dense else self._cosine(query, i) for i in union])
        # A chunk none of whose sentences came back scores as the last sentence that did.
        floor = min(sentence.values(), default=0.0)
        sentence_scores = np.array([sentence.get(i, floor) for i in union])
        lexical_scores = np.array([lexical[self.index.chunk_row(i)] for i in union], dtype=np.float64)
        signals = (dense_scores, sentence_scores, lexical_scores)
        if self.fusion.method == "rrf":
            fused = sum(_rrf(scores, self.fusion.rrf_k) for scores in signals)
        else:
            weights = (self.fusion.dense_weight, self.fusion.sentence_weight,
                       1 - self.fusion.dense_weight - self.fusion.sentence_weight)
            fused = sum(w * _min_max(scores) for w, scores in zip(weights, signals))
        order = np.argsort(-fused, kind="stable")
        return [(union[j], float(fused[j]), float(dense_scores[j]), float(sentence_scores[j]),
                 float(lexical_scores[j])) for j in order]

    def _cosine(self, query: np.ndarray, chunk_id: int) -> float:
        return float(self.index.dense.reconstruct(chunk_id) @ query)


def _search(vectors, query: np.ndarray, allowed: np.ndarray | None, n: int):
    """(scores, ids) of the ``n`` nearest vectors, only among ``allowed`` ids when given."""
    import faiss

    params = None
    if allowed is not None:
        params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(allowed))
    scores, ids = vectors.search(query[None, :], min(n, max(vectors.ntotal, 1)), params=params)
    keep = ids[0] >= 0
    return scores[0][keep], ids[0][keep]


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
    """Keep the best of overlapping chunks of one document; stop at ``top_k`` hits."""
    hits: list[Hit] = []
    window = ranked[: max(top_k * 3, top_k + 10)]
    chunks = {c.id: c for c in index.chunks([r[0] for r in window])}
    for chunk_id, score, dense, sentence, lexical in window:
        chunk = chunks.get(chunk_id)
        if chunk is None:
            continue
        if any(h.chunk.doc_id == chunk.doc_id and h.chunk.start < chunk.end and chunk.start < h.chunk.end
               for h in hits):
            continue
        hits.append(Hit(chunk, score, dense, sentence, lexical))
        if len(hits) == top_k:
            break
    return hits
