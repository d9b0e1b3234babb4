"""`qa index` with its embedding spread over Ray workers: the index it builds is the one a single
process builds, a cluster that is not there is one line of error, and Ray loads only when asked for."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from qa.errors import EmbedWorkersUnavailable
from qa.settings import Settings
from qa.store import IndexReader

from .conftest import DEMO_CORPUS
from .helpers import run_qa

pytest.importorskip("ray", reason="the `ray` extra is not installed")

QA = Path(sys.executable).with_name("qa")
ROOT = Path(__file__).resolve().parent.parent


def _qa(*args: str, **env: str) -> subprocess.CompletedProcess:
    """One `qa` process, as a user runs it: Ray starts and stops with it, so none outlives a test."""
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
                   **env}
    return subprocess.run([str(QA), *map(str, args)], capture_output=True, text=True, env=environment,
                          timeout=300, check=False)


def _vectors(index: IndexReader) -> dict[str, dict[int, np.ndarray]]:
    return {name: {int(i): vectors.vector(i) for i in vectors.ids()}
            for name, vectors in (("chunks", index.dense), ("sentences", index.sentences))}


@pytest.fixture(scope="module")
def ray_index(tmp_path_factory):
    """The demo corpus indexed by two Ray workers. Each runs torch on as many threads as this process
    does: in bfloat16 the thread count moves vectors by ~1e-3, the very difference looked for."""
    import torch

    directory = tmp_path_factory.mktemp("ray") / "index"
    run = _qa("index", DEMO_CORPUS, "--index", directory, "--embed-workers", "2",
              QA_TORCH_THREADS=str(torch.get_num_threads()))
    assert run.returncode == 0, run.stderr
    return Settings(index_dir=directory), run


@pytest.mark.slow
def test_two_workers_build_the_index_one_process_builds(ray_index, demo_index):
    settings, run = ray_index
    [summary] = run.stdout.strip().splitlines()  # Ray's own messages stay out of the command's output
    assert summary.startswith(f"{DEMO_CORPUS}: ") and summary.endswith(" chunks embedded")
    [progress] = run.stderr.strip().splitlines()
    assert progress.startswith("embedding ")
    spread, alone = IndexReader.open(settings.index_dir), IndexReader.open(demo_index.index_dir)
    try:
        spread_vectors, alone_vectors = _vectors(spread), _vectors(alone)
    finally:
        spread.close()
        alone.close()
    for kind in ("chunks", "sentences"):
        assert spread_vectors[kind].keys() == alone_vectors[kind].keys()
        worst = max(float(np.abs(spread_vectors[kind][i] - vector).max()) for i, vector in alone_vectors[kind].items())
        assert worst == 0.0, f"{kind}: vectors differ by up to {worst:g}"


@pytest.mark.slow
def test_two_workers_give_the_same_hits_and_answers(ray_index, demo_pipeline, embedder, reader):
    from qa.pipeline import Pipeline

    settings, _ = ray_index
    spread = Pipeline(settings, embedder=embedder, reader=reader)
    lines = (DEMO_CORPUS / "questions.jsonl").read_text(encoding="utf-8").splitlines()
    for question in [json.loads(line)["question"] for line in lines[:4]]:
        hits = [(h.chunk.doc_id, h.chunk.start, h.score) for h in spread.search(question)]
        assert hits == [(h.chunk.doc_id, h.chunk.start, h.score) for h in demo_pipeline.search(question)]
        answer, expected = spread.ask(question), demo_pipeline.ask(question)
        assert (answer.text, answer.confidence) == (expected.text, expected.confidence)


@pytest.mark.parametrize(("address", "error"), [
    ("127.0.0.1:1", "no Ray cluster answers at QA_RAY_ADDRESS='127.0.0.1:1': [Errno 111] Connection refused"),
    ("ray://127.0.0.1:1", "no Ray cluster answers at QA_RAY_ADDRESS='ray://127.0.0.1:1'"),
    ("nohost", "QA_RAY_ADDRESS='nohost' is not an address of Ray; it takes ray://HOST:10001, HOST:6379 or auto"),
], ids=["gcs", "client", "no-port"])
def test_a_cluster_that_is_not_there_is_one_line_of_error(address, error, tmp_path):
    result = run_qa("index", DEMO_CORPUS, "--index", tmp_path / "index", "--embed-workers", "2",
                    "--ray-address", address)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: {error}"), result.stderr
    assert not (tmp_path / "index").exists()


def test_workers_without_ray_installed_name_the_extra(monkeypatch):
    from qa import ray_embedding
    from qa.embedding import Embedder

    monkeypatch.setattr(ray_embedding, "ray", None)
    with pytest.raises(EmbedWorkersUnavailable, match=r"qa-extractive\[ray\]"):
        with ray_embedding.ray_embedder(Settings(embed_workers=2), Embedder()):
            pass


def test_indexing_in_process_never_imports_ray():
    code = "import sys, qa.cli, qa.embedding, qa.indexing; print('ray' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"


@pytest.mark.slow
def test_vectors_depend_only_on_the_groups_not_on_their_order(embedder):
    """What spreading the work relies on: each group of ``batches`` embeds alike wherever, whenever."""
    texts = [f"The {word} team won the game in {year}." * (1 + year % 3)
             for year in range(1990, 2060) for word in ("red", "blue")]
    groups = embedder.batches(texts)
    assert sorted(np.concatenate(groups).tolist()) == list(range(len(texts)))
    reversed_order = np.zeros((len(texts), embedder.dimension), dtype=np.float32)
    for group in reversed(groups):
        reversed_order[group] = embedder.encode_batch([texts[i] for i in group])
    assert np.array_equal(embedder.encode(texts), reversed_order)
