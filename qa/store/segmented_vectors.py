"""The vectors of a generation's segments searched as one index, rows deleted since left out."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .vectors import VectorIndex


class SegmentedVectors:
    """Each segment's ``VectorIndex`` searched in turn; their best ``n`` together are the answer.

    ``live`` holds the ids the generation still has, sorted; a segment's other ids were
    deleted after it was written and are excluded from its searches.
    """

    def __init__(self, parts: Sequence[VectorIndex], live: np.ndarray):
        self.parts = list(parts)
        self._excluded = []
        owner_ids, owners, positions = [np.zeros(0, np.int64)], [np.zeros(0, np.int32)], [np.zeros(0, np.int64)]
        alive = [np.zeros(0, bool)]
        for number, part in enumerate(self.parts):
            ids = part.ids()
            alive.append(np.isin(ids, live))
            self._excluded.append(ids[~alive[-1]])
            owner_ids.append(ids)
            owners.append(np.full(len(ids), number, dtype=np.int32))
            positions.append(np.arange(len(ids), dtype=np.int64))
        all_ids = np.concatenate(owner_ids)
        order = np.argsort(all_ids, kind="stable")
        self._sorted_ids = all_ids[order]
        self._owner = np.concatenate(owners)[order]
        self._position = np.concatenate(positions)[order]  # where each id is stored in its segment
        self._found = self._sorted_ids[np.concatenate(alive)[order]]  # the live ids that have a vector

    @property
    def size(self) -> int:
        """Live vectors: those of every segment, less the deleted ones."""
        return len(self._found)

    @property
    def dimension(self) -> int:
        return self.parts[0].dimension if self.parts else 0

    @property
    def approximate(self) -> bool:
        """Whether unfiltered searches of the largest segment go through its approximate index."""
        return bool(self.parts) and max(self.parts, key=lambda p: p.size).approximate

    def ids(self) -> np.ndarray:
        """The ids of the live vectors, sorted."""
        return self._found

    def vector(self, vector_id: int) -> np.ndarray:
        at = np.searchsorted(self._sorted_ids, vector_id)
        if at == len(self._sorted_ids) or self._sorted_ids[at] != vector_id:
            raise KeyError(f"no vector with id {vector_id}")
        return self.parts[self._owner[at]].vector(vector_id)

    def vectors(self, vector_ids: np.ndarray) -> np.ndarray:
        """The vectors of ``vector_ids`` (all stored), as float32 rows in that order."""
        at = np.searchsorted(self._sorted_ids, vector_ids)
        found = np.zeros((len(vector_ids), self.dimension), dtype=np.float32)
        for number, part in enumerate(self.parts):
            mine = np.flatnonzero(self._owner[at] == number)
            if len(mine):
                found[mine] = part.vectors_at(self._position[at[mine]])
        return found

    def search(self, query: np.ndarray, n: int, allowed: np.ndarray | None = None,
               *, exact: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """As ``VectorIndex.search``, over the live vectors of every segment."""
        found = [part.search(query, n, allowed, excluded, exact=exact)
                 for part, excluded in zip(self.parts, self._excluded) if part.size]
        if not found:
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        if len(found) == 1:
            return found[0]
        scores = np.concatenate([s for s, _ in found])
        ids = np.concatenate([i for _, i in found])
        best = np.argsort(-scores, kind="stable")[:n]
        return scores[best], ids[best]

    def start_approximate(self) -> None:
        for part in self.parts:
            part.start_approximate()

    def build_approximate(self) -> None:
        """Build the approximate index of the largest segment now, whatever its size (benches)."""
        if self.parts:
            max(self.parts, key=lambda p: p.size).build_approximate()

    def wait_for_approximate(self) -> None:
        for part in self.parts:
            part.wait_for_approximate()

    def remove(self, ids: np.ndarray) -> None:
        """Leave ``ids`` out of this reader's searches (in memory only)."""
        for number, part in enumerate(self.parts):
            self._excluded[number] = np.union1d(self._excluded[number], np.intersect1d(part.ids(), ids))
        self._found = np.setdiff1d(self._found, ids)
