"""The Milvus backend against a real Milvus Lite server process: the demo answers, filters, writes,
citations, and failing fast when Milvus is not there."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from qa.bench.live_server import free_port
from qa.documents import Document
from qa.errors import BackendUnavailable, IndexCorrupt, InvalidInput, UnknownDocument
from qa.retrieval import Filters
from qa.settings import Settings

from .conftest import DEMO_CORPUS
from .milvus_lite import LiteServer, cut_vector_files_short

QUESTION = "When did Canadian and Ukrainian negotiators hold their first session on a bilateral security agreement?"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    lite = LiteServer(tmp_path_factory.mktemp("milvus-lite")).start()
    yield lite
    lite.stop()


def _settings(uri: str, collection: str, **more) -> Settings:
    return Settings(**{"backend": "milvus", "milvus_uri": uri, "milvus_collection": collection, "milvus_timeout_s": 5,
                       **more})


@pytest.fixture(scope="module")
def milvus_pipeline(server, embedder, reader):
    """The demo corpus indexed into the server (read-only for tests)."""
    from qa.pipeline import Pipeline

    pipeline = Pipeline(_settings(server.uri, "demo"), embedder=embedder, reader=reader)
    report = pipeline.index_corpus(DEMO_CORPUS)
    assert report.added > 10 and not report.skipped
    return pipeline


def _questions() -> list[dict]:
    lines = (DEMO_CORPUS / "questions.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def _answer(answer) -> tuple[str | None, bool]:
    return answer.text, answer.abstained


@pytest.mark.slow
def test_the_demo_questions_get_the_local_backends_answers(milvus_pipeline, demo_pipeline):
    differ = []
    for item in _questions():
        milvus, local = milvus_pipeline.ask(item["question"]), demo_pipeline.ask(item["question"])
        if _answer(milvus) != _answer(local):
            differ.append((item["id"], _answer(milvus), _answer(local)))
        for citation in milvus.citations:
            assert milvus_pipeline.document(citation.doc_id).text[citation.start:citation.end] == citation.quote
    assert not differ


@pytest.mark.slow
def test_the_index_holds_what_the_local_one_does(milvus_pipeline, demo_pipeline):
    milvus, local = milvus_pipeline.manifest(), demo_pipeline.manifest()
    assert (milvus.documents, milvus.chunks, milvus.sentences) == (local.documents, local.chunks, local.sentences)
    assert milvus_pipeline.list_documents(limit=100) == demo_pipeline.list_documents(limit=100)
    wire = {"sources": ["Baltic Wire"], "since": date(2023, 7, 1)}
    assert milvus_pipeline.list_documents(**wire) == demo_pipeline.list_documents(**wire)
    doc_id = demo_pipeline.list_documents(limit=1)[1][0]["id"]
    assert milvus_pipeline.document(doc_id) == demo_pipeline.document(doc_id)
    with pytest.raises(UnknownDocument):
        milvus_pipeline.document("no such document")


_PAGED_QUERY = """
import sys
from qa.store.backends import MilvusAddress
from qa.store.milvus.connection import Milvus
milvus = Milvus(MilvusAddress(sys.argv[1], "quiet", None, 10.0))
milvus.create_collection("rows", dimension=2)
milvus.insert("rows", [{"id": i, "vector": [0.6, 0.8]} for i in range(5)])
print(len(list(milvus.rows("rows", "", ["id"]))))
"""


@pytest.mark.slow
def test_pymilvus_prints_nothing_of_its_own(tmp_path):
    """Paging through rows makes pymilvus warn, on a stderr handler of its own, that Milvus Lite
    gives no MVCC timestamp: in a process of the service that line never shows."""
    done = subprocess.run([sys.executable, "-c", _PAGED_QUERY, str(tmp_path / "milvus.db")],
                          capture_output=True, text=True, timeout=120, check=False,
                          cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "5"
    assert done.stderr == ""


@pytest.mark.slow
@pytest.mark.parametrize("filters", [
    Filters(sources=("Baltic Wire",)),
    Filters(since=date(2023, 8, 20), until=date(2023, 8, 31)),
    Filters(until=date(2023, 7, 15)),
    Filters(doc_ids=("2023-08-28-canada-ukraine-security-talks.txt", "2023-07-13-g7-vilnius-declaration.txt")),
    Filters(sources=("no such outlet",)),
], ids=["source", "days", "until", "doc_ids", "nothing"])
def test_filters_give_the_local_backends_passages(milvus_pipeline, demo_pipeline, filters):
    milvus = milvus_pipeline.search(QUESTION, top_k=10, filters=filters)
    local = demo_pipeline.search(QUESTION, top_k=10, filters=filters)
    assert [(h.chunk.doc_id, h.chunk.start) for h in milvus] == [(h.chunk.doc_id, h.chunk.start) for h in local]
    documents = milvus_pipeline.index.documents([h.chunk.doc_id for h in milvus], with_text=False)
    for hit in milvus:
        doc = documents[hit.chunk.doc_id]
        assert not filters.sources or doc.source in filters.sources
        assert not filters.doc_ids or doc.id in filters.doc_ids
        assert not filters.since or (doc.published and doc.published >= filters.since)
        assert not filters.until or (doc.published and doc.published <= filters.until)
    assert bool(milvus) == (filters.sources != ("no such outlet",))


def _places(index, chunk_ids) -> list[tuple[str, int]]:
    """Where each chunk is in its document: the same chunk's place in either backend."""
    return [(chunk.doc_id, chunk.start) for chunk in index.chunks(chunk_ids)]


@pytest.mark.slow
def test_milvus_bm25_scores_as_the_local_bm25(milvus_pipeline, demo_pipeline):
    milvus, local = (p.index.candidates(QUESTION, None, p.index.chunk_count, Filters(), ["lexical"])
                     for p in (milvus_pipeline, demo_pipeline))
    local_scores = dict(zip(_places(demo_pipeline.index, local.chunk_ids), local.scores["lexical"]))
    milvus_scores = dict(zip(_places(milvus_pipeline.index, milvus.chunk_ids), milvus.scores["lexical"]))
    assert set(milvus_scores) == {place for place, score in local_scores.items() if score > 0}
    assert np.allclose([milvus_scores[p] for p in milvus_scores], [local_scores[p] for p in milvus_scores],
                       rtol=1e-4)


@pytest.mark.slow
def test_every_candidate_has_every_signals_score(milvus_pipeline, embedder):
    index = milvus_pipeline.index
    query = embedder.encode_query(QUESTION)
    found = index.candidates(QUESTION, query, 5, Filters(), ["dense", "sentence", "lexical"])
    assert len(found.chunk_ids) > 5  # the signals disagree: some chunks come from one signal only
    stored = index.milvus.get(index.names.chunks, ids=found.chunk_ids, output_fields=["vector"])
    vectors = {row["id"]: np.asarray(row["vector"]) for row in stored}
    assert np.allclose(found.scores["dense"], [vectors[i] @ query for i in found.chunk_ids], atol=1e-5)
    # BM25 over every chunk, for the score of chunks that the BM25 search did not return.
    everything = index.candidates(QUESTION, None, index.chunk_count, Filters(), ["lexical"])
    bm25 = dict(zip(everything.chunk_ids, everything.scores["lexical"]))
    assert np.allclose(found.scores["lexical"], [bm25.get(i, 0.0) for i in found.chunk_ids])
    assert sum(bm25.get(i, 0.0) > 0 for i in found.chunk_ids) > 5


@pytest.mark.slow
def test_sentence_bm25_is_refused(milvus_pipeline, embedder):
    with pytest.raises(InvalidInput, match="sentence BM25"):
        milvus_pipeline.index.candidates("who?", embedder.encode_query("who?"), 5, Filters(), ["sentence_lexical"])
    with pytest.raises(ValidationError, match="sentence BM25"):
        Settings(backend="milvus", sentence_lexical_weight=0.1)


def _document(doc_id: str, text: str, **fields) -> Document:
    return Document(id=doc_id, title=fields.pop("title", doc_id), text=text, **fields)


@pytest.mark.slow
def test_upsert_replaces_and_delete_removes(server, embedder, reader):
    from qa.pipeline import Pipeline

    pipeline = Pipeline(_settings(server.uri, "writes"), embedder=embedder, reader=reader)
    odd_id = 'a "quoted" \\ id\nwith a new line'
    long_text = "The harbour of Quillon was rebuilt in 1952. " + "Élan vital, naïve café. " * 1_500
    pipeline.add([_document("stays", "The lighthouse of Ardmore is painted red and white.", source="Coast Post"),
                  _document(odd_id, "The ferry to Inishmore leaves at nine.", published=date(2023, 5, 1)),
                  _document("long", long_text)])
    first = pipeline.manifest()
    stays = [h.chunk.id for h in pipeline.search("lighthouse of Ardmore", filters=Filters(doc_ids=("stays",)))]
    assert pipeline.document("long").text == long_text and len(long_text) > 30_000
    assert pipeline.document(odd_id).published == date(2023, 5, 1)
    assert [h.chunk.doc_id for h in pipeline.search("ferry", filters=Filters(doc_ids=(odd_id,)))] == [odd_id]

    pipeline.add([_document(odd_id, "The ferry to Inishmore now leaves at ten.", published=date(2023, 5, 2))])
    assert pipeline.manifest().generation == first.generation + 1
    assert pipeline.document(odd_id).text == "The ferry to Inishmore now leaves at ten."
    answer = pipeline.ask("When does the ferry to Inishmore leave?")
    assert answer.text == "ten" and [c.doc_id for c in answer.citations] == [odd_id]
    assert pipeline.manifest().chunks == first.chunks  # the old version's chunks are gone
    assert [h.chunk.id for h in pipeline.search("lighthouse of Ardmore", filters=Filters(doc_ids=("stays",)))] == stays

    pipeline.delete([odd_id, "long"])
    with pytest.raises(UnknownDocument):
        pipeline.document(odd_id)
    assert pipeline.manifest().documents == 1
    assert {h.chunk.doc_id for h in pipeline.search("ferry Inishmore harbour Quillon")} == {"stays"}
    with pytest.raises(UnknownDocument):
        pipeline.delete(["long"])


@pytest.mark.slow
def test_an_embedded_milvus_lite_path_serves_answers(tmp_path, embedder, reader):
    from qa.pipeline import Pipeline

    settings = _settings(str(tmp_path / "index" / "milvus.db"), "embedded")
    pipeline = Pipeline(settings, embedder=embedder, reader=reader)
    pipeline.add([_document("bridge", "The Tolka bridge was opened in 1879 by the mayor.", title="Tolka bridge")])
    answer = pipeline.ask("When was the Tolka bridge opened?")
    assert answer.text == "1879" and answer.citations[0].doc_id == "bridge"
    assert pipeline.manifest().documents == 1


def _unavailable_quickly(call, limit_s: float):
    started = time.monotonic()
    with pytest.raises(BackendUnavailable, match="Milvus at"):
        call()
    assert time.monotonic() - started < limit_s


@pytest.mark.slow
def test_no_server_at_the_uri_is_unavailable_at_once(embedder, reader):
    from qa.pipeline import Pipeline

    pipeline = Pipeline(_settings(f"http://127.0.0.1:{free_port()}", "nowhere"), embedder=embedder, reader=reader)
    _unavailable_quickly(pipeline.manifest, 3)
    response = TestClient(_app(pipeline)).post("/api/ask", json={"question": QUESTION})
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "backend_unavailable"


@pytest.mark.slow
def test_a_server_that_never_answers_times_out(embedder, reader):
    from qa.pipeline import Pipeline

    with socket.socket() as silent:  # accepts connections, never speaks
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        uri = f"http://127.0.0.1:{silent.getsockname()[1]}"
        pipeline = Pipeline(_settings(uri, "silent", milvus_timeout_s=1), embedder=embedder, reader=reader)
        _unavailable_quickly(pipeline.manifest, 4)


@pytest.mark.slow
def test_a_stopped_server_is_unavailable_and_a_503(tmp_path, embedder, reader):
    from qa.pipeline import Pipeline

    lite = LiteServer(tmp_path / "milvus").start()
    try:
        pipeline = Pipeline(_settings(lite.uri, "stopped"), embedder=embedder, reader=reader)
        pipeline.add([_document("bridge", "The Tolka bridge was opened in 1879 by the mayor.")])
        assert pipeline.ask("When was the Tolka bridge opened?").text == "1879"
    finally:
        lite.stop()
    _unavailable_quickly(lambda: pipeline.ask("When was the Tolka bridge opened?"), 6)
    client = TestClient(_app(pipeline))
    for response in (client.post("/api/ask", json={"question": "When was the Tolka bridge opened?"}),
                     client.get("/api/documents/bridge")):
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "backend_unavailable"

    # Restarted over the same data, it holds its collections released; a new process loads them.
    lite = LiteServer(tmp_path / "milvus").start()
    try:
        fresh = Pipeline(_settings(lite.uri, "stopped"), embedder=embedder, reader=reader)
        assert fresh.ask("When was the Tolka bridge opened?").text == "1879"
    finally:
        lite.stop()


@pytest.mark.slow
def test_a_server_that_lost_its_files_reports_a_corrupt_index(tmp_path, embedder, reader):
    """Milvus answers but cannot load a collection (a file cut short, as kill -9 can leave one):
    a 503 that names the collection and Milvus's reason, not a 500."""
    from qa.pipeline import Pipeline

    data = tmp_path / "milvus"
    lite = LiteServer(data).start()
    try:
        pipeline = Pipeline(_settings(lite.uri, "cut"), embedder=embedder, reader=reader)
        pipeline.add([_document("bridge", "The Tolka bridge was opened in 1879 by the mayor.")])
    finally:
        lite.stop()
    cut_vector_files_short(data, "cut_chunks")

    lite = LiteServer(data).start()
    try:
        fresh = Pipeline(_settings(lite.uri, "cut"), embedder=embedder, reader=reader)
        with pytest.raises(IndexCorrupt, match="cannot load the collection cut_chunks: .+"):
            fresh.ask("When was the Tolka bridge opened?")
        response = TestClient(_app(fresh)).post("/api/ask", json={"question": "When was the Tolka bridge opened?"})
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "index_corrupt"
        assert "cut_chunks" in response.json()["error"]["message"]
    finally:
        lite.stop()


def _app(pipeline):
    """The API without its start-up warm-up (which needs the index), as after Milvus went away."""
    from api import create_app

    return create_app(pipeline.settings, pipeline)


def test_the_local_backend_never_loads_pymilvus():
    code = ("import sys, qa.pipeline, qa.indexing, api; from qa.indexing import location; "
            "from qa.settings import Settings; location(Settings()).generation(); "
            "print('pymilvus' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).parent.parent).stdout.strip() == "False"
