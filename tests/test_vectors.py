"""Vector storage: float16 FAISS indexes, float32 ones from older indexes read as float16, and the
approximate search of large indexes."""

import subprocess
import sys

import faiss
import numpy as np
import pytest

from qa.bench.scale import clustered_unit_vectors
from qa.store import vectors
from qa.store.vectors import VectorIndex


def _unit_rows(count: int, dimension: int = 64, seed: int = 0) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((count, dimension)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_float16_scores_stay_within_a_thousandth_of_float32():
    data, queries = _unit_rows(2000), _unit_rows(20, seed=1)
    ids = np.arange(10, 2010, dtype=np.int64)
    index = VectorIndex.empty(64)
    index.add(data, ids)
    exact = queries @ data.T
    for q in range(len(queries)):
        scores, found = index.search(queries[q], 10)
        assert np.all(np.abs(scores - exact[q, found - 10]) < 1e-3)
        best = np.sort(exact[q])[::-1][:10]
        assert np.all(np.abs(scores - best) < 1e-3)  # the same top scores, in order


def test_an_older_float32_index_is_read_as_float16_with_its_ids(tmp_path):
    data = _unit_rows(300)
    ids = np.arange(1000, 1300, dtype=np.int64)
    old = faiss.IndexIDMap2(faiss.IndexFlatIP(64))
    old.add_with_ids(data, ids)
    old.remove_ids(np.array([1005, 1100], dtype=np.int64))  # ids need not be contiguous
    faiss.write_index(old, str(tmp_path / "old.faiss"))

    index = VectorIndex.read(tmp_path / "old.faiss")

    index.write(tmp_path / "converted.faiss")
    written = faiss.read_index(str(tmp_path / "converted.faiss"))
    assert isinstance(faiss.downcast_index(written.index), faiss.IndexScalarQuantizer)
    assert index.ids().tolist() == faiss.vector_to_array(old.id_map).tolist()
    assert np.allclose(index.vector(1299), data[299], atol=1e-3)
    query = data[42]
    assert index.search(query, 1)[1].tolist() == [1042]
    assert sorted(index.search(query, 5, np.array([1001, 1002]))[1].tolist()) == [1001, 1002]


def test_an_empty_older_index_reads_empty(tmp_path):
    faiss.write_index(faiss.IndexIDMap2(faiss.IndexFlatIP(8)), str(tmp_path / "empty.faiss"))
    index = VectorIndex.read(tmp_path / "empty.faiss")
    assert index.size == 0 and index.dimension == 8


def test_float16_storage_survives_a_write_and_read(tmp_path):
    index = VectorIndex.empty(64)
    index.add(_unit_rows(50), np.arange(50, dtype=np.int64))
    index.write(tmp_path / "new.faiss")
    again = VectorIndex.read(tmp_path / "new.faiss")
    assert np.array_equal(again.vector(7), index.vector(7))
    assert isinstance(faiss.downcast_index(faiss.read_index(str(tmp_path / "new.faiss")).index),
                      faiss.IndexScalarQuantizer)  # the written format is unchanged


def test_faiss_runs_on_torchs_openmp_runtime():
    """Two OpenMP runtimes would fight for the cores (qa/store/vectors.py): FAISS must use torch's.

    Checked in a fresh interpreter, where nothing else has decided the import order: a thread
    count set through FAISS is then the one torch sees.
    """
    code = ("from qa.store.vectors import VectorIndex; VectorIndex.empty(4); import faiss, torch; "
            "faiss.omp_set_num_threads(1); print(torch.get_num_threads())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"


@pytest.fixture(scope="module")
def large_index() -> tuple[VectorIndex, np.ndarray]:
    data = clustered_unit_vectors(20_000 + 30, 384)
    index = VectorIndex.empty(384)
    index.add(data[:20_000], np.arange(5, 20_005, dtype=np.int64))
    index.build_approximate()
    return index, data[20_000:]  # queries: the same distribution, not in the index


def test_approximate_search_finds_at_least_98_percent_of_the_exhaustive_top_20(large_index):
    index, queries = large_index
    assert index.approximate
    found = [len(set(index.search(q, 20)[1].tolist()) & set(index.search(q, 20, exact=True)[1].tolist()))
             for q in queries]
    assert sum(found) / (20 * len(queries)) >= 0.98


def test_approximate_search_returns_the_exhaustive_scores_of_what_it_finds(large_index):
    index, queries = large_index
    scores, ids = index.search(queries[0], 20)
    exact = dict(zip(*reversed(index.search(queries[0], 200, exact=True))))
    assert len(ids) == 20 and list(scores) == sorted(scores, reverse=True)
    assert all(exact[i] == s for i, s in zip(ids.tolist(), scores.tolist()) if i in exact)


def test_a_filtered_search_stays_exhaustive_and_exact(large_index):
    index, queries = large_index
    allowed = np.arange(100, 20_005, 97, dtype=np.int64)
    _, ids = index.search(queries[1], 10, allowed)
    members = np.array([index.vector(i) for i in allowed])
    best = allowed[np.argsort(-(members @ queries[1]), kind="stable")[:10]]
    assert set(ids.tolist()) <= set(allowed.tolist())
    assert ids.tolist() == best.tolist()


def test_removed_vectors_leave_the_approximate_search_too():
    data = clustered_unit_vectors(2_000, 384, seed=3)
    index = VectorIndex.empty(384)
    index.add(data, np.arange(2_000, dtype=np.int64))
    index.build_approximate()
    nearest = int(index.search(data[7], 1)[1][0])
    index.remove(np.array([nearest]))
    assert nearest not in index.search(data[7], 20)[1].tolist()
    assert index.size == 1_999


def test_only_an_index_large_enough_builds_an_approximate_search(monkeypatch):
    index = VectorIndex.empty(384)
    index.add(clustered_unit_vectors(600, 384, seed=4), np.arange(600, dtype=np.int64))
    monkeypatch.setattr(vectors, "APPROXIMATE_FROM", 601)
    index.start_approximate()
    index.wait_for_approximate()
    assert not index.approximate
    monkeypatch.setattr(vectors, "APPROXIMATE_FROM", 600)
    index.start_approximate()
    index.wait_for_approximate()
    assert index.approximate
