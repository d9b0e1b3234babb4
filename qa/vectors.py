"""FAISS storage and search of the chunk and sentence vectors.

Vectors are kept as float16 copies and searched exhaustively. They are unit length, so float16
keeps every component to about three significant digits at half the memory, and the search is
no slower (docs/decisions.md). Indexes written before this (float32 ``IndexFlatIP``) are
converted when read.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np


@functools.cache
def _faiss():
    # The torch and faiss-cpu wheels each bring their own OpenMP runtime. Loaded after torch's,
    # FAISS runs on torch's runtime; loaded first, it keeps its own, whose idle threads then
    # fight torch's for the cores and retrieval slows down (docs/decisions.md).
    import faiss
    import torch  # noqa: F401

    return faiss


def empty(dimension: int):
    """An index of unit vectors keyed by int64 ids, scored by inner product."""
    faiss = _faiss()
    storage = faiss.IndexScalarQuantizer(dimension, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
    return faiss.IndexIDMap2(storage)


def read(path: Path):
    """The index at ``path``, as float16 storage whatever it was written as."""
    faiss = _faiss()
    index = faiss.read_index(str(path))
    if isinstance(faiss.downcast_index(index.index), faiss.IndexScalarQuantizer):
        return index
    converted = empty(index.d)
    if index.ntotal:
        converted.add_with_ids(index.index.reconstruct_n(0, index.ntotal), ids(index))
    return converted


def write(index, path: Path) -> None:
    faiss = _faiss()
    with open(path, "wb") as handle:
        # Through a Python file object, so that a failed write raises OSError with its errno.
        faiss.write_index(index, faiss.PyCallbackIOWriter(handle.write))


def ids(index) -> np.ndarray:
    """The ids of the stored vectors, in storage order."""
    return _faiss().vector_to_array(index.id_map).astype(np.int64)


def search(index, query: np.ndarray, n: int, allowed: np.ndarray | None = None):
    """(scores, ids) of the ``n`` nearest vectors, best first, only among ``allowed`` ids when given."""
    faiss = _faiss()
    params = None
    if allowed is not None:
        params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(allowed))
    scores, ids = index.search(query[None, :], min(n, max(index.ntotal, 1)), params=params)
    keep = ids[0] >= 0
    return scores[0][keep], ids[0][keep]
