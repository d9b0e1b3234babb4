"""The pipeline as the one door to the index: add, delete, read and index a corpus, then ask."""

import shutil
from dataclasses import replace
from datetime import date

import pytest

from qa.documents import Document
from qa.errors import InvalidInput, UnknownDocument
from qa.pipeline import Pipeline
from qa.reading import ExtractiveReader

ACCORD = Document(id="facade/zorblax", title="Zorblax accord", source="Test Wire", published=date(2023, 9, 9),
                  text="The Zorblax accord was signed in the town of Quillon on a rainy morning.")
QUESTION = "Where was the Zorblax accord signed?"


@pytest.fixture(scope="module")
def reader():
    return ExtractiveReader()


@pytest.fixture
def pipeline(tmp_path, demo_index, embedder, reader):
    """A pipeline over a private copy of the demo index."""
    index_dir = tmp_path / "index"
    shutil.copytree(demo_index.index_dir, index_dir)
    return Pipeline(demo_index.model_copy(update={"index_dir": index_dir}), embedder=embedder, reader=reader)


def test_added_replaced_and_deleted_documents_are_what_the_next_ask_sees(pipeline):
    start = pipeline.manifest()
    added = pipeline.add([ACCORD])
    assert (added.added, added.updated, added.removed) == (1, 0, 0)
    assert pipeline.manifest().generation == start.generation + 1
    assert pipeline.manifest().documents == start.documents + 1
    answer = pipeline.ask(QUESTION)
    assert "Quillon" in answer.text and answer.citations[0].doc_id == ACCORD.id

    again = pipeline.add([ACCORD])
    assert (again.added, again.unchanged, again.manifest) == (0, 1, None)  # nothing to commit

    moved = replace(ACCORD, text=ACCORD.text.replace("Quillon", "Marrowby"))
    assert pipeline.add([moved]).updated == 1
    assert pipeline.document(ACCORD.id).text == moved.text
    assert "Marrowby" in pipeline.ask(QUESTION).text

    deleted = pipeline.delete([ACCORD.id])
    assert deleted.removed == 1 and pipeline.manifest().documents == start.documents
    with pytest.raises(UnknownDocument):
        pipeline.document(ACCORD.id)
    assert all(c.doc_id != ACCORD.id for c in pipeline.ask(QUESTION).citations)


def test_refused_writes_change_nothing(pipeline):
    start = pipeline.manifest()
    twin = replace(ACCORD, text="Another text under the same id.")
    with pytest.raises(InvalidInput, match="unique"):
        pipeline.add([ACCORD, twin])
    with pytest.raises(InvalidInput):
        pipeline.add([])
    known = pipeline.list_documents(limit=1)[1][0]["id"]
    with pytest.raises(UnknownDocument, match="no-such-doc"):
        pipeline.delete([known, "no-such-doc"])
    with pytest.raises(InvalidInput):
        pipeline.delete([])
    assert pipeline.manifest() == start
    assert pipeline.document(known).id == known


def test_listing_filters_by_source_and_date(pipeline):
    pipeline.add([ACCORD])
    total, rows = pipeline.list_documents(sources=["Test Wire"])
    assert total == 1 and rows[0]["id"] == ACCORD.id
    assert pipeline.list_documents(sources=["Test Wire"], until=date(2023, 9, 8))[0] == 0
    assert pipeline.list_documents(sources=["Test Wire"], since=date(2023, 9, 9))[0] == 1
    everything, _ = pipeline.list_documents()
    page_total, page = pipeline.list_documents(offset=2, limit=3)
    assert page_total == everything and len(page) == 3


def test_index_corpus_adds_and_removes_files(tmp_path, settings, embedder, reader):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name, body in {"a.txt": "Alpha talks opened in Ottawa.", "b.txt": "Beta aid reached Kyiv."}.items():
        (corpus / name).write_text(f"Title: {name}\nSource: Test\nPublished: 2023-08-01\n\n{body}")
    pipeline = Pipeline(settings, embedder=embedder, reader=reader)
    first = pipeline.index_corpus(corpus)
    assert (first.added, first.removed) == (2, 0)
    (corpus / "b.txt").unlink()
    second = pipeline.index_corpus(corpus)
    assert (second.added, second.unchanged, second.removed) == (0, 1, 1)
    assert [row["id"] for row in pipeline.list_documents()[1]] == ["a.txt"]
    rebuilt = pipeline.add([ACCORD], rebuild=True)
    assert rebuilt.added == 1 and pipeline.list_documents()[0] == 1
