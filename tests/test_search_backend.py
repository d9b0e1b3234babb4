"""The seam: fusion runs on whatever a SearchBackend returns, and the scale bench's corpus."""

import json

import numpy as np
import pytest

from qa.bench import scale
from qa.retrieval import Filters, FusionConfig, Retriever
from qa.store import Candidates, IndexConfig, IndexReader, SearchBackend, StoredChunk, vectors
from qa.store.backends import LocalIndex


class _Backend:
    """A SearchBackend with fixed candidates: three chunks, each best by one signal."""

    chunk_count = 3
    with_sentences = True

    def __init__(self):
        self.asked = []

    def candidates(self, question, query, n, filters, signals):
        self.asked.append((question, n, filters, tuple(signals)))
        if tuple(signals) == ("lexical",):
            return Candidates([30, 20], {"lexical": np.array([9.0, 1.0])})
        scores = {"dense": np.array([0.9, 0.5, 0.1]), "sentence": np.array([0.2, 0.8, 0.2]),
                  "lexical": np.array([0.0, 1.0, 9.0])}
        return Candidates([10, 20, 30], {s: scores[s] for s in signals})

    def chunks(self, chunk_ids):
        return [StoredChunk(i, f"doc-{i}", 0, 5, "text.") for i in chunk_ids]

    def story_copies(self, story_ids):
        return {}

    def documents(self, doc_ids, *, with_text=True):
        return {}


class _Encoder:
    def encode_query(self, question):
        return np.ones(4, dtype=np.float32) / 2


def test_the_retriever_fuses_any_backends_candidates():
    backend = _Backend()
    assert isinstance(backend, SearchBackend)
    filters = Filters(sources=("wire",))
    hits = Retriever(backend, _Encoder(), FusionConfig()).search("who?", top_k=3, filters=filters)
    # Convex fusion, weights 0.2 dense, 0.4 sentence, 0.4 BM25, of min-max scaled scores.
    assert [h.chunk.id for h in hits] == [20, 30, 10]
    assert hits[0].score == pytest.approx(0.2 * 0.5 + 0.4 * 1.0 + 0.4 * 1 / 9)
    assert (hits[0].dense_score, hits[0].sentence_score, hits[0].lexical_score) == (0.5, 0.8, 1.0)
    assert backend.asked == [("who?", 3, filters, ("dense", "sentence", "lexical"))]


def test_a_single_signal_mode_asks_for_that_signal_alone():
    backend = _Backend()
    hits = Retriever(backend, _Encoder(), FusionConfig()).search("who?", top_k=2, mode="lexical")
    assert backend.asked[0][3] == ("lexical",)
    assert [(h.chunk.id, h.score, h.lexical_score, h.dense_score) for h in hits] == [
        (30, 9.0, 9.0, 0.0), (20, 1.0, 1.0, 0.0)]


def test_synthetic_documents_are_deterministic_and_consistent():
    corpus = scale.SyntheticCorpus()
    first, again = corpus.document(12), scale.SyntheticCorpus().document(12)
    assert first.document.text == again.document.text
    assert np.array_equal(first.vectors, again.vectors)
    for chunk in first.chunks:
        assert first.document.text[chunk.start:chunk.end] == chunk.text
    assert len(first.sentence_vectors) == len(first.sentences) >= 3 * len(first.chunks)
    assert np.allclose(np.linalg.norm(first.vectors, axis=1), 1.0, atol=1e-5)


def test_the_scale_bench_writes_its_figures_and_plot(tmp_path):
    from click.testing import CliRunner

    from qa.cli import cli

    out, plot = tmp_path / "scale.json", tmp_path / "scale.png"
    result = CliRunner().invoke(cli, ["bench", "scale", "--sizes", "300", "--writes", "1", "--questions", "5",
                                      "--out", str(out), "--plot", str(plot)])
    assert result.exit_code == 0, result.output
    figures = json.loads(out.read_text())["sizes"][0]
    assert figures["chunks"] == 300 and figures["sentences"] > 600
    assert 0 < figures["retrieval_p50_ms"] <= figures["retrieval_p95_ms"]
    assert 0.5 <= figures["recall_at_20"]["chunks"] <= 1.0
    assert figures["disk_mb"] > 0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Scale, local backend: 300 chunks" in result.output


@pytest.mark.slow
def test_the_scale_bench_measures_milvus(tmp_path):
    """The same bench through the Milvus backend, on a Milvus Lite file in its scratch folder."""
    from click.testing import CliRunner

    from qa.cli import cli

    out = tmp_path / "scale.json"
    result = CliRunner().invoke(cli, ["bench", "scale", "--backend", "milvus", "--sizes", "300", "--writes", "2",
                                      "--questions", "5", "--out", str(out), "--plot", str(tmp_path / "scale.png"),
                                      "--scratch", str(tmp_path)])
    assert result.exit_code == 0, result.output
    figures = json.loads(out.read_text())["sizes"][0]
    assert figures["backend"] == "milvus" and figures["chunks"] == 300
    assert figures["documents"] > 2 and figures["sentences"] > 600
    assert figures["one_document_write_p50_s"] > 0
    assert 0 < figures["retrieval_p50_ms"] <= figures["retrieval_p95_ms"]
    assert figures["recall_at_20"] is None and figures["open_index_memory_mb"] is None
    assert "Scale, milvus backend: 300 chunks" in result.output
    assert "exhaustive (FLAT)" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scale.json", "scale.png"]  # the Lite file is gone


def test_the_scale_bench_refuses_a_size_out_of_range():
    from click.testing import CliRunner

    from qa.cli import cli
    from qa.cli_options import USAGE_ERROR

    result = CliRunner().invoke(cli, ["bench", "scale", "--sizes", "2000000"])
    assert result.exit_code == USAGE_ERROR and "from 100 to 1,000,000" in result.output


@pytest.fixture(scope="module")
def synthetic_index(tmp_path_factory):
    index_dir = tmp_path_factory.mktemp("synthetic")
    config = IndexConfig("stand-in", scale.DIMENSION, 200, 40)
    scale._build(scale.SyntheticCorpus(), LocalIndex(index_dir), config, 300)
    return index_dir


def _best_sentence(reader, chunk_id, query):
    ids = reader.sentence_ids[reader.sentence_chunk_ids == chunk_id]  # by a scan, as a reference
    return max(float(reader.sentences.vector(int(i)) @ query) for i in ids)


def test_the_local_backend_scores_every_candidate_on_every_signal(synthetic_index):
    reader = IndexReader.open(synthetic_index)
    question = scale.SyntheticCorpus().question(3)
    found = reader.candidates(question.text, question.vector, 20, Filters(), ("dense", "sentence", "lexical"))
    lexical = reader.lexical.scores(question.text)
    assert 20 <= len(found.chunk_ids) == len(set(found.chunk_ids)) <= 60
    for k, chunk_id in enumerate(found.chunk_ids):
        assert found.scores["dense"][k] == pytest.approx(float(reader.dense.vector(chunk_id) @ question.vector),
                                                         abs=1e-5)
        assert found.scores["lexical"][k] == pytest.approx(float(lexical[reader.chunk_row(chunk_id)]))
        # Exact for chunks whose sentences came back, a bound for the others.
        assert found.scores["sentence"][k] >= _best_sentence(reader, chunk_id, question.vector) - 1e-5
    best = int(np.argmax(found.scores["sentence"]))
    assert found.scores["sentence"][best] == pytest.approx(
        _best_sentence(reader, found.chunk_ids[best], question.vector), abs=1e-5)
    reader.close()


def test_the_local_backend_applies_the_filters(synthetic_index):
    reader = IndexReader.open(synthetic_index)
    question = scale.SyntheticCorpus().question(3)
    only = Filters(doc_ids=("doc-0000003", "doc-0000009"))
    found = reader.candidates(question.text, question.vector, 20, only, ("dense", "sentence", "lexical"))
    assert found.chunk_ids
    assert {c.doc_id for c in reader.chunks(found.chunk_ids)} <= set(only.doc_ids)
    nothing = reader.candidates(question.text, question.vector, 20, Filters(sources=("elsewhere",)),
                                ("dense", "lexical"))
    assert nothing.chunk_ids == [] and set(nothing.scores) == {"dense", "lexical"}
    reader.close()


def test_a_reader_of_a_large_index_searches_approximately_with_the_same_hits(synthetic_index, monkeypatch):
    question = scale.SyntheticCorpus().question(5)
    fusion = FusionConfig()
    exhaustive = IndexReader.open(synthetic_index)
    assert not exhaustive.dense.approximate
    expected = Retriever(exhaustive, scale.StandInEncoder([question]), fusion).search(question.text, 5)
    monkeypatch.setattr(vectors, "APPROXIMATE_FROM", 100)
    reader = IndexReader.open(synthetic_index)
    reader.wait_for_approximate()
    assert reader.dense.approximate and reader.sentences.approximate
    hits = Retriever(reader, scale.StandInEncoder([question]), fusion).search(question.text, 5)
    assert [h.chunk.id for h in hits] == [h.chunk.id for h in expected]
    exhaustive.close()
    reader.close()


def test_a_very_large_index_scores_the_sentences_of_the_other_signals_candidates(synthetic_index, monkeypatch):
    from qa.store import local_search

    question = scale.SyntheticCorpus().question(3)
    reader = IndexReader.open(synthetic_index)
    searched = reader.candidates(question.text, question.vector, 20, Filters(), ("dense", "sentence", "lexical"))
    monkeypatch.setattr(local_search, "RESCORE_SENTENCES_FROM", 0)
    found = reader.candidates(question.text, question.vector, 20, Filters(), ("dense", "sentence", "lexical"))
    others = reader.candidates(question.text, question.vector, 20, Filters(), ("dense", "lexical"))
    assert found.chunk_ids == others.chunk_ids  # the sentence signal brings no chunk of its own
    for k, chunk_id in enumerate(found.chunk_ids):
        assert found.scores["sentence"][k] == pytest.approx(_best_sentence(reader, chunk_id, question.vector),
                                                            abs=1e-5)
    # Where both have it, a chunk's sentence score is the one the search over all sentences gave.
    best = int(np.argmax(searched.scores["sentence"]))
    if searched.chunk_ids[best] in found.chunk_ids:
        assert found.scores["sentence"][found.chunk_ids.index(searched.chunk_ids[best])] == pytest.approx(
            searched.scores["sentence"][best], abs=1e-5)
    reader.close()
