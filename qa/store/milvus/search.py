"""Candidates from Milvus: its exact inner-product searches for the vector signals, its BM25 for
the lexical one, the question's filters and the generation's visible rows applied in each search."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

from ...errors import InvalidInput
from ..protocol import Candidates, Filters, Signal
from .collections import BM25_K1, bm25_texts
from .expressions import is_in, matching

if TYPE_CHECKING:
    from .backend import MilvusBackend


def candidates(backend: MilvusBackend, question: str, query: np.ndarray | None, n: int, filters: Filters,
               signals: Sequence[Signal]) -> Candidates:
    """See ``SearchBackend.candidates``."""
    if "sentence_lexical" in signals:
        raise InvalidInput("the milvus backend has no sentence BM25 signal: set QA_SENTENCE_LEXICAL_WEIGHT=0")
    if "sentence" in signals and not backend.with_sentences:
        raise ValueError("this index has no sentence vectors")
    if query is None and ("dense" in signals or "sentence" in signals):
        raise ValueError("the vector signals need the question's vector")
    if n <= 0:
        return Candidates.none(signals)
    where = backend.where(matching(filters))
    dense_top = _vector_top(backend, backend.names.chunks, query, n, where, "id") if "dense" in signals else {}
    lexical_top = _lexical_top(backend, question, n, where) if "lexical" in signals else {}
    # Several sentences of one chunk may rank high: look deeper to reach ``n`` chunks.
    sentence_top = (_vector_top(backend, backend.names.sentences, query, 4 * n, where, "chunk_id")
                    if "sentence" in signals else {})
    chunk_ids = list(dict.fromkeys([*dense_top, *lexical_top, *list(sentence_top)[:n]]))

    scores: dict[Signal, np.ndarray] = {}
    if "dense" in signals:
        dense = dense_top | _inner_products(backend, query, [i for i in chunk_ids if i not in dense_top])
        scores["dense"] = np.array([dense[i] for i in chunk_ids], dtype=np.float64)
    if "sentence" in signals:
        last = min(sentence_top.values(), default=0.0)
        scores["sentence"] = np.array([sentence_top.get(i, last) for i in chunk_ids], dtype=np.float64)
    if "lexical" in signals:
        missing = [i for i in chunk_ids if i not in lexical_top]
        rest = _lexical_top(backend, question, len(missing), backend.where(is_in("id", missing))) if missing else {}
        lexical = lexical_top | rest
        scores["lexical"] = np.array([lexical.get(i, 0.0) for i in chunk_ids], dtype=np.float64)
    return Candidates(chunk_ids, scores)


def _vector_top(backend: MilvusBackend, collection: str, query: np.ndarray, n: int, where: str,
                chunk_field: str) -> dict[int, float]:
    """Chunk id -> the best score of its rows among the ``n`` best (Milvus returns the best first)."""
    hits = backend.milvus.search(collection, data=[np.asarray(query, dtype=np.float32).tolist()],
                                 anns_field="vector", limit=n, filter=where, output_fields=[chunk_field],
                                 search_params={"metric_type": "IP"})[0]
    best: dict[int, float] = {}
    for hit in hits:
        best.setdefault(int(hit["entity"][chunk_field]), float(hit["distance"]))
    return best


def _lexical_top(backend: MilvusBackend, question: str, n: int, where: str) -> dict[int, float]:
    """Chunk id -> BM25 score of the ``n`` best chunks; chunks sharing no word are left out."""
    (words,) = bm25_texts([question])
    if not words:  # stop words only
        return {}
    hits = backend.milvus.search(backend.names.chunks, data=[words], anns_field="words", limit=n, filter=where,
                                 output_fields=["id"], search_params={"metric_type": "BM25"})[0]
    # Milvus reports a BM25 score as the distance, Milvus Lite as its negative. Either carries the
    # factor k1 + 1 that the local BM25 (bm25s's "lucene" variant) leaves out: divided out, the
    # scores are the local ones.
    scores = {int(hit["id"]): abs(float(hit["distance"])) / (BM25_K1 + 1) for hit in hits}
    return {chunk_id: score for chunk_id, score in scores.items() if score > 0}


def _inner_products(backend: MilvusBackend, query: np.ndarray, chunk_ids: list[int]) -> dict[int, float]:
    """query · vector of chunks that the dense search did not return."""
    if not chunk_ids:
        return {}
    rows = backend.milvus.query(backend.names.chunks, filter=backend.where(is_in("id", chunk_ids)),
                                output_fields=["id", "vector"], limit=len(chunk_ids))
    return {int(row["id"]): float(np.asarray(row["vector"], dtype=np.float32) @ query) for row in rows}
