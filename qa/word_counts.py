"""How often each stemmed word occurs in each item (chunk or sentence): what BM25 is computed from.

Stored word by word (the layout BM25 reads): the items holding word ``w`` are
``rows[starts[w]:starts[w + 1]]``, each with its count in ``counts`` at the same place.
Row ``r`` is the item whose id is ``ids[r]``, ``lengths[r]`` words long.
"""

from __future__ import annotations

import functools
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

# What an older index (format 4) kept beside its BM25 matrix: each chunk's words in item order.
LEGACY_TOKENS_FILE = "tokens.npz"


@dataclass(frozen=True)
class WordCounts:
    ids: np.ndarray
    lengths: np.ndarray
    vocab: list[str]
    starts: np.ndarray
    rows: np.ndarray
    counts: np.ndarray

    @classmethod
    def from_words(cls, ids: Sequence[int], words: Sequence[Sequence[str]]) -> WordCounts:
        """The counts of ``words[i]``, the stemmed words of item ``ids[i]``."""
        vocab: dict[str, int] = {}
        pieces = [np.array([vocab.setdefault(w, len(vocab)) for w in item], dtype=np.int64) for item in words]
        flat = np.concatenate(pieces) if pieces else np.zeros(0, np.int64)
        return cls._from_item_words(np.asarray(ids, dtype=np.int64),
                                    np.array([len(p) for p in pieces], dtype=np.int64), flat, list(vocab))

    @classmethod
    def _from_item_words(cls, ids: np.ndarray, lengths: np.ndarray, word_ids: np.ndarray,
                         vocab: list[str]) -> WordCounts:
        """From every item's word ids one after another (item ``i`` has ``lengths[i]`` of them)."""
        items = len(ids)
        item_of_each_word = np.repeat(np.arange(items, dtype=np.int64), lengths)
        # One entry per (word, item) pair, sorted by word and then item.
        pairs, counts = np.unique(word_ids.astype(np.int64) * max(items, 1) + item_of_each_word,
                                  return_counts=True)
        word_of_pair, row_of_pair = np.divmod(pairs, max(items, 1))
        return cls(ids, lengths.astype(np.int32), vocab, _starts(word_of_pair, len(vocab)),
                   row_of_pair.astype(np.int32), counts.astype(np.int32))

    @classmethod
    def merged(cls, parts: Sequence[WordCounts], keep: Sequence[np.ndarray]) -> WordCounts:
        """The rows of each part where ``keep[part]`` is true, one after another, over one vocabulary."""
        vocab: dict[str, int] = {}
        words, rows, counts = [], [], []
        offset = 0
        for part, kept in zip(parts, keep):
            renumbered = np.cumsum(kept) - 1 + offset
            merged_word = np.array([vocab.setdefault(w, len(vocab)) for w in part.vocab], dtype=np.int64)
            word_of_entry = np.repeat(np.arange(len(part.vocab)), np.diff(part.starts))
            alive = kept[part.rows]
            words.append(merged_word[word_of_entry[alive]])
            rows.append(renumbered[part.rows[alive]])
            counts.append(part.counts[alive])
            offset += int(kept.sum())
        word = np.concatenate(words) if words else np.zeros(0, np.int64)
        row = np.concatenate(rows) if rows else np.zeros(0, np.int64)
        order = np.lexsort((row, word))
        word, row = word[order], row[order]
        # Words that only deleted rows had are dropped, so the vocabulary does not grow forever.
        used = np.bincount(word, minlength=len(vocab)) > 0
        renumber = np.cumsum(used) - 1
        vocab_list = [w for w, keep_word in zip(vocab, used) if keep_word]
        return cls(np.concatenate([p.ids[k] for p, k in zip(parts, keep)]) if parts else np.zeros(0, np.int64),
                   np.concatenate([p.lengths[k] for p, k in zip(parts, keep)]) if parts else np.zeros(0, np.int32),
                   vocab_list, _starts(renumber[word], len(vocab_list)), row.astype(np.int32),
                   (np.concatenate(counts)[order] if counts else np.zeros(0)).astype(np.int32))

    @functools.cached_property
    def _word_numbers(self) -> dict[str, int]:
        return {w: i for i, w in enumerate(self.vocab)}

    def vocabulary(self) -> dict[str, int]:
        """Word -> its number; built once, as a segment's counts serve one reader after another."""
        return self._word_numbers

    def save(self, path: Path) -> None:
        with open(path, "wb") as handle:
            # Words joined by newlines (which no word holds): a fixed-width string array would give
            # every word the room of the longest.
            np.savez(handle, ids=self.ids, lengths=self.lengths, starts=self.starts, rows=self.rows,
                     counts=self.counts, vocab=np.frombuffer("\n".join(self.vocab).encode(), dtype=np.uint8))

    @classmethod
    def load(cls, path: Path) -> WordCounts:
        """The counts saved at ``path``; ValueError when they are damaged."""
        try:
            with np.load(path, allow_pickle=False) as data:
                joined = data["vocab"].tobytes().decode()
                counts = cls(data["ids"], data["lengths"], joined.split("\n") if joined else [],
                             data["starts"], data["rows"], data["counts"])
        except (KeyError, EOFError, UnicodeDecodeError, zipfile.BadZipFile) as exc:
            raise ValueError(f"{path} cannot be read ({exc})") from None
        if not (len(counts.starts) == len(counts.vocab) + 1 and counts.starts[-1] == len(counts.rows)
                == len(counts.counts) and len(counts.ids) == len(counts.lengths)
                and int(counts.rows.max(initial=-1)) < len(counts.ids)):
            raise ValueError(f"{path} is inconsistent")
        return counts

    @classmethod
    def load_legacy(cls, directory: Path) -> WordCounts | None:
        """The words an older index saved in item order, or None when it has none (or unreadable ones)."""
        try:
            with np.load(directory / LEGACY_TOKENS_FILE, allow_pickle=False) as data:
                ids, offsets, word_ids, vocab = data["ids"], data["offsets"], data["word_ids"], data["vocab"]
        except (OSError, KeyError, ValueError, zipfile.BadZipFile):
            return None
        if not (len(offsets) == len(ids) + 1 and offsets[-1] == len(word_ids)
                and int(word_ids.max(initial=-1)) < len(vocab)):
            return None
        return cls._from_item_words(ids.astype(np.int64), np.diff(offsets), word_ids, [str(w) for w in vocab])


def _starts(sorted_words: np.ndarray, words: int) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(np.bincount(sorted_words, minlength=words))]).astype(np.int64)
