"""`qa bench index` measures a whole build and then single-document commits into that index."""

import json

import pytest

from qa.bench.indexing import bench_index

from .conftest import DEMO_CORPUS

pytestmark = pytest.mark.slow


def test_bench_index_times_the_build_and_one_document_writes(tmp_path, capsys):
    out = tmp_path / "index.json"
    result = bench_index(DEMO_CORPUS, out, limit=4, writes=2)
    saved = json.loads(out.read_text())
    assert saved == result
    assert saved["documents"] == 4 and saved["chunks"] >= 4
    writes = saved["one_document_writes"]
    assert len(writes) == 2
    for write in writes:
        assert write["embed"] > 0 and write["write"] > 0
        assert write["total"] >= write["embed"] + write["write"]
    assert saved["one_document_write_median_s"] == pytest.approx(sum(w["total"] for w in writes) / 2, abs=2e-3)
    assert "one-document write, median of 2: total (s)" in capsys.readouterr().out
