"""FAISS storage and search of the chunk and sentence vectors: ``VectorIndex`` is FAISS's one owner.

Vectors are kept as float16 copies and written as an exhaustive index. They are unit length,
so float16 keeps every component to about three significant digits (scores move by about
1e-4) at half the memory, and the search is no slower (README, "Speed"). Indexes written
before this (float32 ``IndexFlatIP``) are converted when read.

A reader of a large index also builds an approximate (IVF) index over the same float16 codes,
in memory and in the background; until it is ready, and for filtered questions, the search
stays exhaustive. It is not written to disk: the files of a generation are the same whatever
its size.
"""

from __future__ import annotations

import functools
import math
import threading
from pathlib import Path

import numpy as np

# Below this many vectors an exhaustive scan is cheap enough and exact; `qa bench scale`
# measures both sides of it. Lower, the IVF's misses cost retrieval quality on SciFact-sized
# corpora for a few milliseconds saved (docs/decisions.md, "Exact vector search below 100,000 vectors").
APPROXIMATE_FROM = 100_000
_ADD_BATCH = 65_536  # vectors decoded to float32 at a time while the approximate index is filled


@functools.cache
def _faiss():
    # The torch and faiss-cpu wheels each bring their own OpenMP runtime. Loaded after torch's,
    # FAISS runs on torch's runtime; loaded first, it keeps its own, whose idle threads then
    # fight torch's for the cores, about tripling retrieval's p95 (docs/decisions.md).
    import torch  # noqa: F401

    # isort: split
    import faiss

    return faiss


def _float16_storage(dimension: int):
    faiss = _faiss()
    return faiss.IndexScalarQuantizer(dimension, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)


class VectorIndex:
    """Unit vectors keyed by int64 ids, scored by inner product."""

    def __init__(self, index):
        self._index = index  # IndexIDMap2 over float16 storage: the copy that is written
        self._approximate = None
        self._builder: threading.Thread | None = None

    @classmethod
    def empty(cls, dimension: int) -> VectorIndex:
        return cls(_faiss().IndexIDMap2(_float16_storage(dimension)))

    @classmethod
    def read(cls, path: Path) -> VectorIndex:
        """The index at ``path``, as float16 storage whatever it was written as."""
        faiss = _faiss()
        index = faiss.read_index(str(path))
        if isinstance(faiss.downcast_index(index.index), faiss.IndexScalarQuantizer):
            return cls(index)
        converted = cls.empty(index.d)
        if index.ntotal:
            converted.add(index.index.reconstruct_n(0, index.ntotal), faiss.vector_to_array(index.id_map))
        return converted

    def write(self, path: Path) -> None:
        faiss = _faiss()
        with open(path, "wb") as handle:
            # Through a Python file object, so that a failed write raises OSError with its errno.
            faiss.write_index(self._index, faiss.PyCallbackIOWriter(handle.write))

    @property
    def size(self) -> int:
        return self._index.ntotal

    @property
    def dimension(self) -> int:
        return self._index.d

    @property
    def approximate(self) -> bool:
        """Whether unfiltered searches now go through the approximate index."""
        return self._approximate is not None

    def ids(self) -> np.ndarray:
        """The ids of the stored vectors, in storage order."""
        return _faiss().vector_to_array(self._index.id_map).astype(np.int64)

    def add(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        if self._approximate is not None or self._builder is not None:
            raise RuntimeError("vectors are added while staging a generation, never once searched")
        self._index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32),
                                 np.asarray(ids, dtype=np.int64))

    def add_live_of(self, other: VectorIndex, live: np.ndarray) -> None:
        """Add the vectors of ``other`` whose ids are in ``live``, in their order there."""
        ids = other.ids()
        rows = np.flatnonzero(np.isin(ids, live))
        for start in range(0, len(rows), _ADD_BATCH):
            batch = rows[start:start + _ADD_BATCH]
            self.add(other._index.index.reconstruct_batch(batch), ids[batch])

    def remove(self, ids: np.ndarray) -> None:
        ids = np.asarray(ids, dtype=np.int64)
        self.wait_for_approximate()  # a build under way would bring the removed vectors back
        self._index.remove_ids(ids)
        if self._approximate is not None:
            self._approximate.remove_ids(ids)

    def vector(self, vector_id: int) -> np.ndarray:
        return self._index.reconstruct(int(vector_id))

    def vectors_at(self, positions: np.ndarray) -> np.ndarray:
        """The vectors stored at ``positions`` (the order of ``ids()``), as float32 rows."""
        return self._index.index.reconstruct_batch(np.asarray(positions, dtype=np.int64))

    def search(self, query: np.ndarray, n: int, allowed: np.ndarray | None = None,
               excluded: np.ndarray | None = None, *, exact: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) of the ``n`` nearest vectors, best first: only among ``allowed`` ids when
        given, else among all but the ``excluded`` ones.

        Approximate when the approximate index is ready, unless ``exact`` or ``allowed`` is given:
        a filter may leave few candidates in the lists an IVF search visits.
        """
        faiss = _faiss()
        index, params, kept = self._index, None, None
        if allowed is not None:
            kept = faiss.IDSelectorBatch(np.asarray(allowed, dtype=np.int64))
        elif excluded is not None and len(excluded):
            left_out = faiss.IDSelectorBatch(np.asarray(excluded, dtype=np.int64))
            kept = faiss.IDSelectorNot(left_out)  # which holds no reference to ``left_out``: kept here
        if allowed is None and not exact and self._approximate is not None:
            index = self._approximate
            params = faiss.SearchParametersIVF(sel=kept, nprobe=index.nprobe) if kept is not None else None
        elif kept is not None:
            params = faiss.SearchParameters(sel=kept)
        query = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
        scores, ids = index.search(query, min(n, max(self.size, 1)), params=params)
        keep = ids[0] >= 0
        return scores[0][keep], ids[0][keep]

    def start_approximate(self) -> None:
        """Build the approximate index in the background if this index is large enough to need it."""
        if self.size >= APPROXIMATE_FROM and self._builder is None and self._approximate is None:
            self._builder = threading.Thread(target=self.build_approximate, name="faiss-ivf", daemon=True)
            self._builder.start()

    def wait_for_approximate(self) -> None:
        builder = self._builder
        if builder is not None:
            builder.join()

    def build_approximate(self) -> None:
        """An IVF index over the same float16 codes: what it finds scores as in the exhaustive search.

        About sqrt(N) lists from spherical k-means on a sample, a third of them visited per
        question (a tenth missed a tenth of the sentence signal's 200 nearest): recall@20 against
        the exhaustive search is checked in tests/test_vectors.py.
        """
        faiss = _faiss()
        size, dimension = self.size, self.dimension
        lists = max(1, min(int(math.sqrt(size)), size // 39))  # k-means wants 39 points a list
        quantizer = faiss.IndexFlatIP(dimension)
        ivf = faiss.IndexIVFScalarQuantizer(quantizer, dimension, lists, faiss.ScalarQuantizer.QT_fp16,
                                            faiss.METRIC_INNER_PRODUCT, False)
        ivf.cp.spherical = True
        ivf.cp.niter = 10
        ivf.cp.max_points_per_centroid = 64  # the sample k-means reads
        storage = self._index.index
        sample = np.linspace(0, size - 1, min(size, 64 * lists)).astype(np.int64)
        ivf.train(storage.reconstruct_batch(sample))
        ids = self.ids()
        for start in range(0, size, _ADD_BATCH):
            stop = min(start + _ADD_BATCH, size)
            ivf.add_with_ids(storage.reconstruct_n(start, stop - start), ids[start:stop])
        ivf.nprobe = max(8, lists // 3)
        # A question is one query: split its lists over the threads instead of over queries
        # (FAISS's default), or a single search keeps one core busy while the other waits.
        ivf.parallel_mode = 1
        self._approximate = ivf
