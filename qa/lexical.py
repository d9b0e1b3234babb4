"""BM25 over chunk texts with bm25s and an English stemmer, saved beside the vectors."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

_IDS_FILE = "chunk_ids.npy"


def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


class LexicalIndex:
    """Row ``i`` of the BM25 matrix is the chunk whose id is ``chunk_ids[i]``."""

    def __init__(self, bm25, chunk_ids: np.ndarray):
        self._bm25 = bm25
        self.chunk_ids = chunk_ids
        self._stem = _stemmer()

    @classmethod
    def build(cls, texts: Sequence[str], chunk_ids: Sequence[int]) -> LexicalIndex:
        import bm25s

        # k1 and b chosen on SQuAD train articles: short chunks, lighter length normalisation.
        bm25 = bm25s.BM25(k1=0.9, b=0.4)
        if texts:
            tokens = bm25s.tokenize(list(texts), stopwords="en", stemmer=_stemmer(), show_progress=False)
            bm25.index(tokens, show_progress=False)
        return cls(bm25, np.asarray(chunk_ids, dtype=np.int64))

    @classmethod
    def load(cls, directory: Path) -> LexicalIndex:
        import bm25s

        chunk_ids = np.load(directory / _IDS_FILE)
        if len(chunk_ids) == 0:
            return cls(bm25s.BM25(), chunk_ids)
        bm25 = bm25s.BM25.load(str(directory), show_progress=False, verbosity=0)
        return cls(bm25, chunk_ids)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        if len(self.chunk_ids):
            self._bm25.save(str(directory), show_progress=False)
        np.save(directory / _IDS_FILE, self.chunk_ids)

    def tokenize_query(self, query: str) -> list[str]:
        import bm25s

        return bm25s.tokenize([query], stopwords="en", stemmer=self._stem,
                              return_ids=False, show_progress=False)[0]

    def scores(self, query: str, mask: np.ndarray | None = None) -> np.ndarray:
        """BM25 score of every chunk (row order of ``chunk_ids``); masked rows score 0."""
        if len(self.chunk_ids) == 0:
            return np.zeros(0, dtype=np.float32)
        tokens = self.tokenize_query(query)
        if not tokens:
            return np.zeros(len(self.chunk_ids), dtype=np.float32)
        return self._bm25.get_scores(tokens, weight_mask=mask).astype(np.float32)
