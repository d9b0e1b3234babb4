"""Sentence vectors in the index and the three-signal fusion that uses them."""

import numpy as np
import pytest
from pydantic import ValidationError

from qa.errors import IndexCorrupt
from qa.indexing import index_corpus
from qa.pipeline import Pipeline
from qa.sentences import sentence_spans
from qa.settings import Settings
from qa.store import IndexReader, indexed_text

from .test_indexing import _write_corpus


def test_sentence_spans_are_trimmed_ordered_and_cover_the_text():
    text = "  Dr. Smith met the U.S. envoy on Jan. 5. Talks ended!\n\nA new line starts here  \n"
    spans = sentence_spans(text)
    assert [text[a:b] for a, b in spans] == [
        "Dr. Smith met the U.S. envoy on Jan. 5.", "Talks ended!", "A new line starts here"]
    assert all(a < b <= c for (a, b), (c, _) in zip(spans, spans[1:]))
    covered = "".join(text[a:b] for a, b in spans)
    assert "".join(covered.split()) == "".join(text.split())
    assert sentence_spans(" \n ") == []


def test_every_sentence_has_a_vector_and_replacing_a_document_drops_its_own(tmp_path, settings, embedder):
    corpus = tmp_path / "c"
    _write_corpus(corpus, {"a.txt": "Alpha talks opened in Ottawa. They lasted two days. Nobody left.",
                           "b.txt": "Beta aid reached Kyiv on Monday. Trucks carried grain."})
    index_corpus(corpus, settings, embedder)
    reader = IndexReader.open(settings.index_dir)
    reader.verify()
    assert reader.manifest.sentences == reader.sentences.ntotal == 5
    rows = reader._query('SELECT s.id, s.start, s."end", c.text, d.title FROM sentences s '
                         'JOIN chunks c ON c.id = s.chunk_id JOIN documents d ON d.id = c.doc_id')
    quotes = sorted(text[start:end] for _, start, end, text, _ in rows)
    assert quotes == sorted(["Alpha talks opened in Ottawa.", "They lasted two days.", "Nobody left.",
                             "Beta aid reached Kyiv on Monday.", "Trucks carried grain."])
    # The stored vector is the embedding of the title and that sentence.
    sentence_id, start, end, text, title = rows[0]
    expected = embedder.encode([indexed_text(title, text[start:end])])[0]
    assert np.allclose(reader.sentences.reconstruct(sentence_id), expected, atol=1e-5)
    reader.close()

    _write_corpus(corpus, {"a.txt": "Alpha talks moved online."})
    index_corpus(corpus, settings, embedder)
    reader = IndexReader.open(settings.index_dir)
    reader.verify()
    assert reader.manifest.sentences == reader.sentences.ntotal == 3
    reader.close()


def test_verify_finds_sentence_vectors_that_do_not_match_the_rows(tmp_path, settings, embedder):
    corpus = tmp_path / "c"
    _write_corpus(corpus, {"a.txt": "One sentence. Another sentence."})
    index_corpus(corpus, settings, embedder)
    reader = IndexReader.open(settings.index_dir)
    reader.sentences.remove_ids(np.array(reader.sentence_ids[:1]))  # in memory only
    with pytest.raises(IndexCorrupt, match="sentence ids differ"):
        reader.verify()
    reader.close()


def test_sentence_score_is_the_best_sentence_of_the_chunk(demo_index, embedder):
    pipeline = Pipeline(demo_index, embedder=embedder)
    question = "Which city hosted the NATO summit?"
    hits = pipeline.search(question, top_k=3)
    assert hits
    query = embedder.encode_query(question)
    index = pipeline.index
    for hit in hits:
        ids = index.sentence_ids_of_chunks(np.array([hit.chunk.id]))
        best = max(float(index.sentences.reconstruct(int(i)) @ query) for i in ids)
        assert hit.sentence_score == pytest.approx(best, abs=1e-5)


def test_fusion_weights_must_leave_room_for_bm25(tmp_path):
    with pytest.raises(ValidationError, match="at most 1"):
        Settings(index_dir=tmp_path, dense_weight=0.7, sentence_weight=0.4)
