"""BM25 with bm25s and an English stemmer, saved beside the vectors: one over chunks, one over sentences."""

from __future__ import annotations

import functools
import logging
import zipfile
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

_IDS_FILE = "ids.npy"
_TOKENS_FILE = "tokens.npz"


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


@dataclass(frozen=True)
class TokenTable:
    """Every item's stemmed words, saved beside its BM25 index.

    Tokenizing is most of the cost of building BM25, and BM25 must be rebuilt over the whole
    corpus at every commit (each document changes every word's weight). With this table a
    commit tokenizes only the items it adds. Item ``ids[i]`` has the words
    ``vocab[word_ids[offsets[i]:offsets[i + 1]]]``.
    """
    ids: np.ndarray
    offsets: np.ndarray
    word_ids: np.ndarray
    vocab: np.ndarray

    @classmethod
    def build(cls, texts: Sequence[str], ids: Sequence[int], previous: TokenTable | None = None,
              fresh: Collection[int] = ()) -> TokenTable:
        """Words of ``texts[i]`` (item ``ids[i]``), reusing ``previous`` for every item it holds
        that is not in ``fresh``. Ids may be reused for new text, so the caller names as fresh
        every id it wrote since ``previous`` was saved."""
        old_rows = {} if previous is None else {
            int(item): row for row, item in enumerate(previous.ids) if int(item) not in fresh}
        vocab: dict[str, int] = {} if previous is None else {w: i for i, w in enumerate(previous.vocab)}
        new_rows = [k for k, item in enumerate(ids) if int(item) not in old_rows]
        new_words = dict(zip(new_rows, stemmed_words([texts[k] for k in new_rows], english_stemmer())))
        pieces = []
        for k, item in enumerate(ids):
            if k in new_words:
                pieces.append(np.array([vocab.setdefault(w, len(vocab)) for w in new_words[k]], np.int64))
            else:
                row = old_rows[int(item)]
                pieces.append(previous.word_ids[previous.offsets[row]:previous.offsets[row + 1]])
        lengths = np.array([len(p) for p in pieces], dtype=np.int64)
        flat = np.concatenate(pieces) if pieces else np.zeros(0, np.int64)
        # Keep only the words some item still has: replaced documents would otherwise grow it forever.
        in_use = np.bincount(flat, minlength=len(vocab)) > 0
        renumbered = np.cumsum(in_use) - 1
        return cls(np.asarray(ids, dtype=np.int64), np.concatenate([[0], np.cumsum(lengths)]),
                   renumbered[flat].astype(np.int32), np.array(list(vocab), dtype=str)[in_use])

    @classmethod
    def load(cls, directory: Path) -> TokenTable | None:
        """The saved table, or None when there is none (older indexes) or it cannot be read."""
        try:
            with np.load(directory / _TOKENS_FILE, allow_pickle=False) as data:
                table = cls(data["ids"], data["offsets"], data["word_ids"], data["vocab"])
        except (OSError, KeyError, ValueError, zipfile.BadZipFile):
            return None
        consistent = (len(table.offsets) == len(table.ids) + 1 and table.offsets[-1] == len(table.word_ids)
                      and int(table.word_ids.max(initial=-1)) < len(table.vocab))
        return table if consistent else None

    def save(self, directory: Path) -> None:
        with open(directory / _TOKENS_FILE, "wb") as handle:
            np.savez(handle, ids=self.ids, offsets=self.offsets, word_ids=self.word_ids, vocab=self.vocab)

    def vocabulary(self) -> dict[str, int]:
        """Word -> column of the BM25 matrix."""
        # bm25s needs one word at least; items of stop words only (say "To be or not to be") have none.
        return {str(w): i for i, w in enumerate(self.vocab)} or {"": 0}


@dataclass(frozen=True)
class _Corpus:
    """What ``bm25s.BM25.index`` takes as a corpus object; ``ids`` reaches the matrix builder as is."""
    ids: TokenTable
    vocab: dict[str, int]


def _score_matrix(table: TokenTable, words: int, k1: float, b: float) -> dict:
    """bm25s's BM25 matrix ("lucene" scoring: one column per word, a row per item) of ``table``.

    bm25s builds it in a Python loop over items, which was most of a commit's time; over whole
    arrays it is the same numbers (a test compares them with bm25s's).
    """
    items = len(table.ids)
    lengths = np.diff(table.offsets)
    item_of_each_word = np.repeat(np.arange(items, dtype=np.int64), lengths)
    # One entry per (word, item) pair, sorted by word and then item: the column-major layout.
    pairs, counts = np.unique(table.word_ids.astype(np.int64) * items + item_of_each_word, return_counts=True)
    word_of_pair, item_of_pair = np.divmod(pairs, items)
    items_with_word = np.bincount(word_of_pair, minlength=words)
    idf = np.log(1 + (items - items_with_word + 0.5) / (items_with_word + 0.5))
    length_norm = k1 * (1 - b + b * lengths / (lengths.mean() or 1.0))
    scores = idf[word_of_pair] * counts / (length_norm[item_of_pair] + counts)
    return {"data": scores.astype(np.float32), "indices": item_of_pair.astype(np.int32),
            "indptr": np.concatenate([[0], np.cumsum(items_with_word)]), "num_docs": items}


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


class LexicalIndex:
    """Row ``i`` of the BM25 matrix is the item (chunk or sentence) whose id is ``ids[i]``."""

    def __init__(self, bm25, ids: np.ndarray, tokens: TokenTable | None = None):
        self._bm25 = bm25
        self.ids = ids
        self.tokens = tokens  # kept only by a freshly built index, to be saved with it
        self._stem = english_stemmer()

    @classmethod
    def build(cls, texts: Sequence[str], ids: Sequence[int], previous: TokenTable | None = None,
              fresh: Collection[int] = ()) -> LexicalIndex:
        """BM25 over ``texts``; see ``TokenTable.build`` for ``previous`` and ``fresh``."""
        tokens = TokenTable.build(texts, ids, previous, fresh)
        # k1 and b chosen on SQuAD train articles: short chunks, lighter length normalisation.
        bm25 = _bm25_class()(k1=0.9, b=0.4)
        if len(tokens.ids):
            bm25.index(_Corpus(tokens, tokens.vocabulary()), show_progress=False)
        return cls(bm25, tokens.ids, tokens)

    @classmethod
    def load(cls, directory: Path) -> LexicalIndex:
        bm25s = _bm25s()
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
        if self.tokens is not None:
            self.tokens.save(directory)

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
