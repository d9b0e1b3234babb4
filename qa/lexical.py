"""BM25 with an English stemmer: by bm25s over a fixed set of items, or scored over segments."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .bm25_query import BM25Query, WordPostings, bm25_weights
from .word_counts import WordCounts


def english_stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


@functools.cache
def _bm25s():
    """The bm25s module, its logger put back on the application's level.

    bm25s sets its logger to DEBUG when imported, so every index build printed a debug line
    wherever an application had installed a log handler (`qa serve` logs to stderr).
    """
    import bm25s

    logging.getLogger("bm25s").setLevel(logging.NOTSET)
    return bm25s


def stemmed_words(texts: Sequence[str], stemmer) -> list[list[str]]:
    """The stemmed words BM25 counts, stop words left out; queries and items alike."""
    return _bm25s().tokenize(list(texts), stopwords="en", stemmer=stemmer, return_ids=False,
                          show_progress=False)


# k1 and b chosen on SQuAD train articles: short chunks, lighter length normalisation.
K1, B = 0.9, 0.4


def idf(items_with_word: np.ndarray, items: int) -> np.ndarray:
    """BM25's inverse document frequency as bm25s's "lucene" scoring has it."""
    return np.log(1 + (items - items_with_word + 0.5) / (items_with_word + 0.5))


def length_norms(lengths: np.ndarray, mean_length: float, k1: float = K1, b: float = B) -> np.ndarray:
    return k1 * (1 - b + b * lengths / (mean_length or 1.0))


def mean_length(lengths: np.ndarray) -> float:
    # Summed as integers: the same items give the same mean in whatever order they come.
    return int(lengths.astype(np.int64).sum()) / len(lengths) if len(lengths) else 0.0


@dataclass(frozen=True)
class _Corpus:
    """What ``bm25s.BM25.index`` takes as a corpus object; ``ids`` reaches the matrix builder as is."""
    ids: WordCounts
    vocab: dict[str, int]


def _score_matrix(words: WordCounts, columns: int, k1: float, b: float) -> dict:
    """bm25s's BM25 matrix ("lucene" scoring: one column per word, a row per item) of ``words``,
    ``columns`` wide (bm25s's vocabulary has a word even when the items have none).

    bm25s builds it in a Python loop over items; over whole arrays it is the same numbers
    (a test compares them with bm25s's).
    """
    word_of_entry = np.repeat(np.arange(len(words.vocab)), np.diff(words.starts))
    norms = length_norms(words.lengths, mean_length(words.lengths), k1, b)
    scores = bm25_weights(idf(np.diff(words.starts), len(words.ids))[word_of_entry], words.counts,
                          norms[words.rows])
    indptr = np.concatenate([words.starts, np.full(columns - len(words.vocab), words.starts[-1])])
    return {"data": scores, "indices": words.rows, "indptr": indptr, "num_docs": len(words.ids)}


@functools.cache
def _bm25_class():
    """bm25s's BM25, its matrix built by ``_score_matrix`` (the method bm25s says to override)."""
    class ArrayBM25(_bm25s().BM25):
        def build_index_from_ids(self, unique_token_ids, corpus_token_ids, show_progress=True,
                                 leave_progress=False):
            if self.method != "lucene":
                raise ValueError(f"only lucene BM25 is built over arrays, not {self.method}")
            self.nonoccurrence_array = None  # as bm25s's own builder sets it for lucene scoring
            return _score_matrix(corpus_token_ids, len(unique_token_ids), self.k1, self.b)

    return ArrayBM25


def count_words(texts: Sequence[str], ids: Sequence[int]) -> WordCounts:
    """The stemmed words of ``texts[i]`` counted as item ``ids[i]``'s."""
    return WordCounts.from_words(ids, stemmed_words(texts, english_stemmer()))


class LexicalIndex:
    """BM25 by bm25s over a fixed set of items; row ``i`` is the item whose id is ``ids[i]``."""

    def __init__(self, bm25, ids: np.ndarray):
        self._bm25 = bm25
        self.ids = ids
        self._stem = english_stemmer()

    @classmethod
    def build(cls, texts: Sequence[str], ids: Sequence[int]) -> LexicalIndex:
        words = count_words(texts, ids)
        bm25 = _bm25_class()(k1=K1, b=B)
        if len(words.ids):
            # bm25s needs one word at least; items of stop words only ("To be or not to be") have none.
            bm25.index(_Corpus(words, words.vocabulary() or {"": 0}), show_progress=False)
        return cls(bm25, words.ids)

    def tokenize_query(self, query: str) -> list[str]:
        return stemmed_words([query], self._stem)[0]

    def scores(self, query: str, mask: np.ndarray | None = None) -> np.ndarray:
        """BM25 score of every item (row order of ``ids``); masked rows score 0."""
        if len(self.ids) == 0:
            return np.zeros(0, dtype=np.float32)
        tokens = self.tokenize_query(query)
        if not tokens:
            return np.zeros(len(self.ids), dtype=np.float32)
        return self._bm25.get_scores(tokens, weight_mask=mask).astype(np.float32)


class SegmentedBM25:
    """BM25 over the live items of several ``WordCounts``, scored when asked.

    The corpus statistics (item count, mean length, how many items hold each word) are those of
    the live items alone, so the scores are exactly those of one index built over them: a
    commit only adds a segment, and no word's weight has to be written again.
    ``live_rows[k][r]`` is the row of part ``k``'s row ``r`` among the live items, or -1.
    """

    def __init__(self, parts: Sequence[WordCounts], live_rows: Sequence[np.ndarray], ids: np.ndarray):
        self.ids = ids  # the live items' ids, in row order
        self._parts = []
        lengths = np.zeros(len(ids), dtype=np.int64)
        # Whether a word's rows, gathered part after part, come out ascending (as the lookups of
        # ``BM25Query`` need): each part's word rows are ascending within the part.
        self._rows_ascending, last = True, -1
        for part, rows in zip(parts, live_rows):
            rows = np.asarray(rows, dtype=np.int64)
            lengths[rows[rows >= 0]] = part.lengths[rows >= 0]
            live = rows[rows >= 0]
            if len(live):
                self._rows_ascending &= bool(live[0] > last and np.all(np.diff(live) > 0))
                last = int(live[-1])
            # A part none of whose items were deleted holds consecutive live rows: an offset is
            # all it needs, and its words' rows need neither a lookup nor a filter.
            whole = len(rows) > 0 and rows[0] >= 0 and np.array_equal(rows, rows[0] + np.arange(len(rows)))
            self._parts.append((part, part.vocabulary(), int(rows[0]) if whole else rows))
        self._norms = length_norms(lengths, mean_length(lengths))
        self._stem = english_stemmer()

    def tokenize_query(self, query: str) -> list[str]:
        return stemmed_words([query], self._stem)[0]

    def scores(self, query: str, mask: np.ndarray | None = None) -> np.ndarray:
        """BM25 score of every live item (row order of ``ids``); masked rows score 0."""
        return self.query(query).all(mask)

    def query(self, query: str) -> BM25Query:
        """The question's words with their postings, to score all rows, some, or find the best."""
        words = []
        for word in self.tokenize_query(query):
            rows, counts = self._postings(word)
            words.append(WordPostings(rows, counts, float(idf(np.array(len(rows)), len(self.ids)))))
        return BM25Query(words, self._norms)

    def _postings(self, word: str) -> tuple[np.ndarray, np.ndarray]:
        """The live rows holding ``word``, ascending, and its count in each."""
        rows, counts = [], []
        for part, vocabulary, live_rows in self._parts:
            w = vocabulary.get(word)
            if w is None:
                continue
            entries = slice(part.starts[w], part.starts[w + 1])
            if isinstance(live_rows, int):
                rows.append(part.rows[entries] + live_rows)
                counts.append(part.counts[entries])
                continue
            mapped = live_rows[part.rows[entries]]
            alive = mapped >= 0
            rows.append(mapped[alive])
            counts.append(part.counts[entries][alive])
        if not rows:
            return np.zeros(0, np.int64), np.zeros(0, np.int32)
        rows, counts = np.concatenate(rows), np.concatenate(counts)
        if self._rows_ascending:
            return rows, counts
        order = np.argsort(rows, kind="stable")
        return rows[order], counts[order]
