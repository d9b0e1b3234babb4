"""Vector storage: float16 FAISS indexes, and float32 ones from older indexes read as float16."""

import subprocess
import sys

import faiss
import numpy as np

from qa import vectors


def _unit_rows(count: int, dimension: int = 64, seed: int = 0) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((count, dimension)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_float16_scores_stay_within_a_thousandth_of_float32():
    data, queries = _unit_rows(2000), _unit_rows(20, seed=1)
    ids = np.arange(10, 2010, dtype=np.int64)
    index = vectors.empty(64)
    index.add_with_ids(data, ids)
    assert isinstance(faiss.downcast_index(index.index), faiss.IndexScalarQuantizer)
    scores, found = index.search(queries, 10)
    exact = queries @ data.T
    for q in range(len(queries)):
        assert np.all(np.abs(scores[q] - exact[q, found[q] - 10]) < 1e-3)
        best = np.sort(exact[q])[::-1][:10]
        assert np.all(np.abs(scores[q] - best) < 1e-3)  # the same top scores, in order


def test_an_older_float32_index_is_read_as_float16_with_its_ids(tmp_path):
    data = _unit_rows(300)
    ids = np.arange(1000, 1300, dtype=np.int64)
    old = faiss.IndexIDMap2(faiss.IndexFlatIP(64))
    old.add_with_ids(data, ids)
    old.remove_ids(np.array([1005, 1100], dtype=np.int64))  # ids need not be contiguous
    faiss.write_index(old, str(tmp_path / "old.faiss"))

    index = vectors.read(tmp_path / "old.faiss")

    assert isinstance(faiss.downcast_index(index.index), faiss.IndexScalarQuantizer)
    assert vectors.ids(index).tolist() == faiss.vector_to_array(old.id_map).tolist()
    assert np.allclose(index.reconstruct(1299), data[299], atol=1e-3)
    query = data[42:43]
    assert index.search(query, 1)[1][0, 0] == 1042
    sel = faiss.SearchParameters(sel=faiss.IDSelectorBatch(np.array([1001, 1002], dtype=np.int64)))
    assert sorted(index.search(query, 5, params=sel)[1][0][:2].tolist()) == [1001, 1002]


def test_an_empty_older_index_reads_empty(tmp_path):
    faiss.write_index(faiss.IndexIDMap2(faiss.IndexFlatIP(8)), str(tmp_path / "empty.faiss"))
    index = vectors.read(tmp_path / "empty.faiss")
    assert index.ntotal == 0 and index.d == 8


def test_float16_storage_survives_a_write_and_read(tmp_path):
    index = vectors.empty(64)
    index.add_with_ids(_unit_rows(50), np.arange(50, dtype=np.int64))
    faiss.write_index(index, str(tmp_path / "new.faiss"))
    again = vectors.read(tmp_path / "new.faiss")
    assert np.array_equal(again.reconstruct(7), index.reconstruct(7))



def test_faiss_runs_on_torchs_openmp_runtime():
    """Two OpenMP runtimes would fight for the cores (qa/vectors.py): FAISS must use torch's.

    Checked in a fresh interpreter, where nothing else has decided the import order: a thread
    count set through FAISS is then the one torch sees.
    """
    code = ("from qa import vectors; vectors.empty(4); import faiss, torch; "
            "faiss.omp_set_num_threads(1); print(torch.get_num_threads())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"
