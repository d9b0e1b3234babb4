"""BM25 with bm25s and an English stemmer, saved beside the vectors: one over chunks, one over sentences."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

_IDS_FILE = "ids.npy"


def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


class LexicalIndex:
    """Row ``i`` of the BM25 matrix is the item (chunk or sentence) whose id is ``ids[i]``."""

    def __init__(self, bm25, ids: np.ndarray):
        self._bm25 = bm25
        self.ids = ids
        self._stem = _stemmer()

    @classmethod
    def build(cls, texts: Sequence[str], ids: Sequence[int]) -> LexicalIndex:
        import bm25s

        # k1 and b chosen on SQuAD train articles: short chunks, lighter length normalisation.
        bm25 = bm25s.BM25(k1=0.9, b=0.4)
        if texts:
            tokens = bm25s.tokenize(list(texts), stopwords="en", stemmer=_stemmer(), show_progress=False)
            bm25.index(tokens, show_progress=False)
        return cls(bm25, np.asarray(ids, dtype=np.int64))

    @classmethod
    def load(cls, directory: Path) -> LexicalIndex:
        import bm25s

        ids = np.load(directory / _IDS_FILE)
        if len(ids) == 0:
            return cls(bm25s.BM25(), ids)
        bm25 = bm25s.BM25.load(str(directory), show_progress=False, verbosity=0)
        return cls(bm25, ids)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        if len(self.ids):
            self._bm25.save(str(directory), show_progress=False)
        np.save(directory / _IDS_FILE, self.ids)

    def tokenize_query(self, query: str) -> list[str]:
        import bm25s

        return bm25s.tokenize([query], stopwords="en", stemmer=self._stem,
                              return_ids=False, show_progress=False)[0]

    def scores(self, query: str, mask: np.ndarray | None = None) -> np.ndarray:
        """BM25 score of every item (row order of ``ids``); masked rows score 0."""
        if len(self.ids) == 0:
            return np.zeros(0, dtype=np.float32)
        tokens = self.tokenize_query(query)
        if not tokens:
            return np.zeros(len(self.ids), dtype=np.float32)
        return self._bm25.get_scores(tokens, weight_mask=mask).astype(np.float32)
