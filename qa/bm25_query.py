"""One question's BM25: every row's score, some rows' scores, or the best rows without scoring all."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


def bm25_weights(word_idf: np.ndarray | float, counts: np.ndarray, norms: np.ndarray) -> np.ndarray:
    """Each (word, item) entry's share of an item's score: ``idf * tf / (norm + tf)``, as float32."""
    return (word_idf * counts / (norms + counts)).astype(np.float32)


def top_rows(scores: np.ndarray, n: int) -> np.ndarray:
    """The rows of the ``n`` best positive scores, best first (ties in row order)."""
    # Only rows holding a word of the question score above 0; choosing among them alone is much
    # cheaper than partitioning every row of a large index.
    rows = np.flatnonzero(scores > 0)
    if len(rows) > n:
        # The n-th best score, found without moving indices around (half the work of
        # ``argpartition``); rows tied with it all stay until the sort below.
        values = scores[rows]
        rows = rows[values >= np.partition(values, len(values) - n)[len(values) - n]]
    return rows[np.argsort(-scores[rows], kind="stable")][:n]


@dataclass(frozen=True)
class WordPostings:
    """The rows holding one word of the question (ascending), its count in each, and its idf."""
    rows: np.ndarray
    counts: np.ndarray
    idf: float


# The best rows are sought among the rows of the question's rarer words only while those hold
# at most this share of all rows; beyond it scoring every row at once is cheaper.
_CANDIDATE_SHARE = 1 / 8


class BM25Query:
    """A question's words with their postings over rows whose BM25 length norms are ``norms``.

    A word repeated in the question counts again, as in bm25s. Each row's score adds its
    words' weights in question order in float64, whichever method computes it, so the three
    give bit-identical scores.
    """

    def __init__(self, words: Sequence[WordPostings], norms: np.ndarray):
        self._words = [w for w in words if len(w.rows)]
        self._norms = norms

    def all(self, mask: np.ndarray | None = None) -> np.ndarray:
        """Every row's score; masked rows score 0."""
        if not self._words:
            return np.zeros(len(self._norms), dtype=np.float32)
        # One pass over every word's entries: adding word by word went over every row again each time.
        weights = [bm25_weights(w.idf, w.counts, self._norms[w.rows]) for w in self._words]
        scores = np.bincount(np.concatenate([w.rows for w in self._words]), np.concatenate(weights),
                             minlength=len(self._norms)).astype(np.float32)
        return scores if mask is None else scores * mask

    def at(self, rows: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """The scores of ``rows``, found in each word's postings; masked rows score 0."""
        rows = np.asarray(rows, dtype=np.int64)
        total = np.zeros(len(rows))
        norms = self._norms[rows]
        for word in self._words:
            # Looked up in the postings' own integer type: mixed types would copy the postings.
            at, hit = _lookup(word.rows, rows.astype(word.rows.dtype, copy=False))
            total[hit] += bm25_weights(word.idf, word.counts[at[hit]], norms[hit])
        scores = total.astype(np.float32)
        return scores if mask is None else scores * mask[rows]

    def top(self, n: int, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The rows of the ``n`` best positive scores, best first (ties in row order), and their scores.

        The same rows as ``top_rows(self.all(mask), n)``, mostly without scoring every row: a
        word adds at most the weight of its highest count at the shortest norm to any row, so
        once the ``n``-th best row among those holding one of the rarer words outscores what the
        other words could add up to, no row holding none of them can be among the best
        (MaxScore, Turtle and Flood 1995).
        """
        shortest = float(self._norms.min())
        bounds = [w.idf * float(w.counts.max()) / (shortest + float(w.counts.max())) for w in self._words]
        order = np.argsort(bounds, kind="stable")[::-1]
        words = [self._words[i] for i in order]
        rest = np.cumsum(np.array(bounds)[order][::-1])[::-1].tolist()[1:] + [0.0]
        budget, taken = len(self._norms) * _CANDIDATE_SHARE, 0
        rows, scores = np.zeros(0, np.int64), np.zeros(0, np.float32)  # rows seen so far, ascending
        for m, word in enumerate(words, start=1):
            taken += len(word.rows)
            if taken > budget:
                break
            # Only rows no earlier word had are new; each row's score is whole once computed.
            new = word.rows[~_lookup(rows, word.rows)[1]].astype(np.int64)
            rows, scores = np.concatenate([rows, new]), np.concatenate([scores, self.at(new, mask)])
            order = np.argsort(rows, kind="stable")  # two ascending runs: a merge
            rows, scores = rows[order], scores[order]
            best = top_rows(scores, n)
            # The margin covers rounding the scores to float32.
            if m == len(words) or (len(best) == n and scores[best[-1]] > rest[m - 1] * (1 + 1e-6)):
                return rows[best], scores[best]
        scores = self.all(mask)
        best = top_rows(scores, n)
        return best, scores[best]


def _lookup(ascending: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each of ``values`` is in the ascending array ``ascending``, and whether it is there."""
    if not len(ascending):
        return np.zeros(len(values), dtype=np.int64), np.zeros(len(values), dtype=bool)
    at = np.minimum(np.searchsorted(ascending, values), len(ascending) - 1)
    return at, ascending[at] == values
