"""Sentence vectors in the index, the sentence BM25 built from its rows, and the fusion of the signals."""

import numpy as np
import pytest
from pydantic import ValidationError

from qa.errors import IndexCorrupt, IndexMismatch
from qa.indexing import index_corpus
from qa.pipeline import Pipeline
from qa.sentences import sentence_spans
from qa.settings import Settings
from qa.store import IndexReader, indexed_text

from .conftest import DEMO_CORPUS
from .test_indexing import _write_corpus

SENTENCE_BM25_ON = {"dense_weight": 0.2, "sentence_weight": 0.3, "sentence_lexical_weight": 0.3}


def test_sentence_spans_are_trimmed_ordered_and_cover_the_text():
    text = "  Dr. Smith met the U.S. envoy on Jan. 5. Talks ended!\n\nA new line starts here  \n"
    spans = sentence_spans(text)
    assert [text[a:b] for a, b in spans] == [
        "Dr. Smith met the U.S. envoy on Jan. 5.", "Talks ended!", "A new line starts here"]
    assert all(a < b <= c for (a, b), (c, _) in zip(spans, spans[1:]))
    covered = "".join(text[a:b] for a, b in spans)
    assert "".join(covered.split()) == "".join(text.split())
    assert sentence_spans(" \n ") == []


def _index_two_documents(corpus, settings, embedder, second: str) -> IndexReader:
    """Index a.txt (three sentences) and b.txt (``second``) into ``settings.index_dir``."""
    _write_corpus(corpus, {"a.txt": "Alpha talks opened in Ottawa. They lasted two days. Nobody left.",
                           "b.txt": second})
    index_corpus(corpus, settings, embedder)
    return IndexReader.open(settings.index_dir)


@pytest.mark.slow
def test_every_sentence_has_a_vector_and_replacing_a_document_drops_its_own(tmp_path, settings, embedder):
    corpus = tmp_path / "c"
    reader = _index_two_documents(corpus, settings, embedder,
                                  "Beta aid reached Kyiv on Monday. Trucks carried grain.")
    reader.verify()
    assert reader.manifest.sentences == reader.sentences.size == 5
    rows = reader._query('SELECT s.id, s.start, s."end", c.text, d.title FROM sentences s '
                         'JOIN chunks c ON c.id = s.chunk_id JOIN documents d ON d.id = c.doc_id')
    quotes = sorted(text[start:end] for _, start, end, text, _ in rows)
    assert quotes == sorted(["Alpha talks opened in Ottawa.", "They lasted two days.", "Nobody left.",
                             "Beta aid reached Kyiv on Monday.", "Trucks carried grain."])
    # The stored vector is the embedding of the title and that sentence.
    sentence_id, start, end, text, title = rows[0]
    expected = embedder.encode([indexed_text(title, text[start:end])])[0]
    # (in bfloat16, batching with other texts moves the vector a little)
    assert float(reader.sentences.vector(sentence_id) @ expected) > 0.995
    reader.close()

    _write_corpus(corpus, {"a.txt": "Alpha talks moved online."})
    index_corpus(corpus, settings, embedder)
    reader = IndexReader.open(settings.index_dir)
    reader.verify()
    assert reader.manifest.sentences == reader.sentences.size == len(reader.sentence_lexical.ids) == 3
    reader.close()


@pytest.mark.slow
def test_verify_finds_sentence_vectors_that_do_not_match_the_rows(tmp_path, settings, embedder):
    corpus = tmp_path / "c"
    _write_corpus(corpus, {"a.txt": "One sentence. Another sentence."})
    index_corpus(corpus, settings, embedder)
    reader = IndexReader.open(settings.index_dir)
    reader.sentences.remove(np.array(reader.sentence_ids[:1]))  # in memory only
    with pytest.raises(IndexCorrupt, match="sentence ids differ"):
        reader.verify()
    reader.close()


@pytest.mark.slow
def test_sentence_score_is_the_best_sentence_of_the_chunk(demo_index, embedder):
    pipeline = Pipeline(demo_index, embedder=embedder)
    question = "Which city hosted the NATO summit?"
    hits = pipeline.search(question, top_k=3)
    assert hits
    query = embedder.encode_query(question)
    index = pipeline.index
    for hit in hits:
        ids = index.sentence_ids_of_chunks(np.array([hit.chunk.id]))
        best = max(float(index.sentences.vector(int(i)) @ query) for i in ids)
        assert hit.sentence_score == pytest.approx(best, abs=1e-5)


@pytest.mark.slow
def test_sentence_bm25_scores_each_sentence_on_its_own(tmp_path, settings, embedder):
    reader = _index_two_documents(tmp_path / "c", settings, embedder,
                                  "Beta aid reached Kyiv on Monday. Trucks carried grain to Kyiv.")
    texts = {sid: text[start:end] for sid, start, end, text in reader._query(
        'SELECT s.id, s.start, s."end", c.text FROM sentences s JOIN chunks c ON c.id = s.chunk_id')}
    scores = reader.sentence_lexical.scores("grain trucks")
    matched = [texts[int(sid)] for sid, score in zip(reader.sentence_lexical.ids, scores) if score > 0]
    assert matched == ["Trucks carried grain to Kyiv."]
    # "Kyiv" is in both sentences of b.txt, and the chunk's score is its better sentence's.
    weighted = settings.model_copy(update=SENTENCE_BM25_ON)
    hits = Pipeline(weighted, embedder=embedder).search("grain to Kyiv", top_k=2)
    assert hits[0].chunk.doc_id == "b.txt"
    both = reader.sentence_lexical.scores("grain to Kyiv")
    assert hits[0].sentence_lexical_score == pytest.approx(float(both.max()))
    # Built from the sentence rows when first used, never stored.
    np.testing.assert_array_equal(reader.sentence_lexical.ids, reader.sentence_ids)
    assert not (reader.directory / "bm25-sentences").exists()
    reader.close()


@pytest.mark.slow
def test_sentence_lexical_score_is_the_best_sentence_bm25_of_the_chunk(demo_index, embedder):
    pipeline = Pipeline(demo_index.model_copy(update=SENTENCE_BM25_ON), embedder=embedder)
    question = "How much humanitarian assistance has Canada committed to Ukraine?"
    index = pipeline.index
    scores = index.sentence_lexical.scores(question)
    for hit in pipeline.search(question, top_k=5):
        mine = np.isin(index.sentence_lexical.ids, index.sentence_ids_of_chunks(np.array([hit.chunk.id])))
        assert hit.sentence_lexical_score == pytest.approx(float(scores[mine].max()))


@pytest.mark.slow
@pytest.mark.parametrize("fusion", ["convex", "rrf"])
def test_sentence_bm25_is_left_out_unless_weighted(demo_index, embedder, fusion):
    question = "How much humanitarian assistance has Canada committed to Ukraine?"
    off = Pipeline(demo_index.model_copy(update={"fusion": fusion}), embedder=embedder).search(question)
    assert all(hit.sentence_lexical_score == 0.0 for hit in off)
    on = Pipeline(demo_index.model_copy(update={"fusion": fusion, **SENTENCE_BM25_ON}),
                  embedder=embedder).search(question)
    assert any(hit.sentence_lexical_score > 0 for hit in on)


def test_fusion_weights_must_leave_room_for_bm25(tmp_path):
    with pytest.raises(ValidationError, match="at most 1"):
        Settings(index_dir=tmp_path, dense_weight=0.5, sentence_weight=0.3, sentence_lexical_weight=0.3)


@pytest.mark.slow
@pytest.mark.parametrize("fusion", ["convex", "rrf"])
def test_an_index_without_sentence_vectors_answers_from_two_signals(tmp_path, embedder, demo_index, fusion):
    settings = Settings(index_dir=tmp_path / "index", sentence_vectors=False, fusion=fusion)
    report = index_corpus(DEMO_CORPUS, settings, embedder)
    assert report.sentences_embedded == 0 and report.chunks_embedded > 0
    assert report.manifest.sentences == 0 and report.manifest.sentence_vectors is False
    pipeline = Pipeline(settings, embedder=embedder)
    pipeline.index.verify()
    retriever = pipeline.retriever()
    if fusion == "convex":  # the sentence vectors' weight goes to the chunk vectors
        assert retriever.fusion.weights[:3] == pytest.approx((0.6, 0.0, 0.4))
    question = "Which city hosted the NATO summit?"
    hits = pipeline.search(question, top_k=3)
    assert len(hits) == 3 and all(hit.sentence_score == 0.0 for hit in hits)
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)
    with_sentences = Pipeline(demo_index.model_copy(update={"fusion": fusion}), embedder=embedder)
    assert hits[0].chunk.doc_id == with_sentences.search(question, top_k=1)[0].chunk.doc_id

    with pytest.raises(IndexMismatch, match="without sentence vectors"):
        _ = Pipeline(settings.model_copy(update={"sentence_vectors": True}), embedder=embedder).index


@pytest.mark.parametrize("n", [1, 5, 40, 500])
def test_the_best_bm25_rows_are_the_best_positive_scores_in_order(n):
    from qa.bm25_query import top_rows

    rng = np.random.default_rng(3)
    scores = np.where(rng.random(10_000) < 0.98, 0.0, rng.random(10_000) + 0.1).astype(np.float32)
    positive = np.flatnonzero(scores > 0)
    expected = positive[np.argsort(-scores[positive], kind="stable")][:n]
    assert top_rows(scores, n).tolist() == expected.tolist()
    assert top_rows(np.zeros(100, dtype=np.float32), n).tolist() == []
    tied = rng.integers(0, 4, 10_000).astype(np.float32)  # most rows tie with the n-th best
    positive = np.flatnonzero(tied > 0)
    assert top_rows(tied, n).tolist() == positive[np.argsort(-tied[positive], kind="stable")][:n].tolist()
