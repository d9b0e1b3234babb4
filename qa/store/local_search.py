"""Candidates from the local index: FAISS for the vector signals, bm25s for the lexical ones."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Sequence

import numpy as np

from ..bm25_query import top_rows
from .protocol import Candidates, Filters, Signal

# From this many sentence vectors on, the sentence signal scores the candidates the other
# signals found, from their own sentences, instead of searching every sentence: at a million
# chunks that search was most of a question's time. Chosen on SQuAD (docs/scaling.md).
RESCORE_SENTENCES_FROM = 2_000_000

# Threads for the chunk vectors' searches, one per question being answered at once.
_VECTOR_SEARCHES = ThreadPoolExecutor(max_workers=8, thread_name_prefix="qa-vector-search")

if TYPE_CHECKING:
    from .reader import IndexReader


def candidates(index: IndexReader, question: str, query: np.ndarray | None, n: int, filters: Filters,
               signals: Sequence[Signal]) -> Candidates:
    """See ``SearchBackend.candidates``."""
    if "sentence" in signals and not index.with_sentences:
        raise ValueError("this index has no sentence vectors")
    if query is None and ("dense" in signals or "sentence" in signals):
        raise ValueError("the vector signals need the question's vector")
    allowed = _allowed_chunk_ids(index, filters)
    if n <= 0 or (allowed is not None and len(allowed) == 0):
        return Candidates.none(signals)
    mask = _chunk_mask(index, allowed)
    # FAISS lets go of the GIL while it searches, so BM25 runs on this thread meanwhile; a
    # search that is not approximate is too quick to be worth handing to another thread.
    aside = "dense" in signals and index.dense.approximate
    dense = _VECTOR_SEARCHES.submit(_dense_top, index, query, allowed, n) if aside else None
    lexical = index.lexical.query(question) if "lexical" in signals else None
    lexical_top = _chunks_of_rows(index, *lexical.top(n, mask)) if lexical is not None else {}
    sentence_lexical = _sentence_lexical_scores(index, question, mask) if "sentence_lexical" in signals else None
    if dense is not None:
        dense_top = dense.result()
    else:
        dense_top = _dense_top(index, query, allowed, n) if "dense" in signals else {}
    # Several sentences of one chunk may rank high: look deeper to reach ``n`` chunks.
    searched = "sentence" in signals and index.sentences.size < RESCORE_SENTENCES_FROM
    sentence_top = _sentence_top(index, query, allowed, 4 * n) if searched else {}
    sentence_lexical_top = _top_of(index, sentence_lexical, n) if sentence_lexical is not None else {}
    chunk_ids = list(dict.fromkeys([*dense_top, *lexical_top, *list(sentence_top)[:n], *sentence_lexical_top]))

    rows = [index.chunk_row(i) for i in chunk_ids]
    scores: dict[Signal, np.ndarray] = {}
    if "dense" in signals:
        scores["dense"] = np.array([dense_top[i] if i in dense_top else float(index.dense.vector(i) @ query)
                                    for i in chunk_ids], dtype=np.float64)
    if "sentence" in signals and not searched:
        scores["sentence"] = _best_sentences(index, query, chunk_ids)
    elif "sentence" in signals:
        last = min(sentence_top.values(), default=0.0)
        scores["sentence"] = np.array([sentence_top.get(i, last) for i in chunk_ids], dtype=np.float64)
    if lexical is not None:
        scores["lexical"] = lexical.at(np.array(rows, dtype=np.int64), mask).astype(np.float64)
    if sentence_lexical is not None:
        scores["sentence_lexical"] = sentence_lexical[rows].astype(np.float64)
    return Candidates(chunk_ids, scores)


def _allowed_chunk_ids(index: IndexReader, filters: Filters) -> np.ndarray | None:
    if not filters.active:
        return None
    return index.chunk_ids_matching(
        sources=filters.sources, doc_ids=filters.doc_ids,
        since=filters.since.isoformat() if filters.since else None,
        until=filters.until.isoformat() if filters.until else None)


def _chunk_mask(index: IndexReader, allowed: np.ndarray | None) -> np.ndarray | None:
    """1 for the BM25 rows of allowed chunks, 0 elsewhere; None when every chunk is allowed."""
    if allowed is None:
        return None
    mask = np.zeros(len(index.lexical.ids), dtype=np.float32)
    mask[[index.chunk_row(int(i)) for i in allowed]] = 1.0
    return mask


def _sentence_lexical_scores(index: IndexReader, question: str, mask: np.ndarray | None) -> np.ndarray:
    """The best BM25 score among each chunk's sentences, in chunk BM25 row order."""
    best = np.zeros(len(index.lexical.ids), dtype=np.float32)
    np.maximum.at(best, index.sentence_chunk_rows, index.sentence_lexical.scores(question))
    return best if mask is None else best * mask


def _dense_top(index: IndexReader, query: np.ndarray, allowed: np.ndarray | None, n: int) -> dict[int, float]:
    scores, ids = index.dense.search(query, n, allowed)
    return {int(i): float(s) for i, s in zip(ids, scores)}


def _sentence_top(index: IndexReader, query: np.ndarray, allowed: np.ndarray | None,
                  n: int) -> dict[int, float]:
    """Chunk id -> its best sentence's score, for the chunks of the ``n`` best sentences."""
    if allowed is not None:
        allowed = index.sentence_ids_of_chunks(allowed)
    scores, ids = index.sentences.search(query, n, allowed)
    best: dict[int, float] = {}
    for chunk_id, score in zip(index.chunk_of_sentences(ids).tolist(), scores.tolist()):
        best.setdefault(chunk_id, score)  # FAISS returns the best first
    return best


def _best_sentences(index: IndexReader, query: np.ndarray, chunk_ids: Sequence[int]) -> np.ndarray:
    """Each chunk's best sentence score, computed from its own sentences' vectors."""
    sentence_ids, owner = index.sentences_of(chunk_ids)
    best = np.full(len(chunk_ids), -np.inf)
    np.maximum.at(best, owner, index.sentences.vectors(sentence_ids) @ query)
    return np.where(np.isfinite(best), best, 0.0)


def _top_of(index: IndexReader, scores: np.ndarray, n: int) -> dict[int, float]:
    """Chunk id -> score of the ``n`` best chunks by a score per BM25 row (zeros left out)."""
    best = top_rows(scores, n)
    return _chunks_of_rows(index, best, scores[best])


def _chunks_of_rows(index: IndexReader, rows: np.ndarray, scores: np.ndarray) -> dict[int, float]:
    """Chunk id -> score, for BM25 rows and their scores."""
    chunk_ids = index.lexical.ids
    return {int(chunk_ids[r]): float(s) for r, s in zip(rows, scores)}
