"""The Reader plumbing: a local Hugging Face extractive-QA model plugged in by path."""

import pytest

from qa.errors import ReaderUnavailable
from qa.pipeline import Pipeline
from qa.reading import Calibration, ExtractiveReader, SpanGuess
from qa.sentences import sentence_bounds
from qa.settings import Settings
from qa.sources import verify_citation


@pytest.mark.slow
def test_a_local_qa_model_directory_can_be_plugged_in(tiny_model_dir, demo_index, embedder, monkeypatch):
    monkeypatch.setenv("QA_READER_MODEL", str(tiny_model_dir))
    monkeypatch.setenv("QA_INDEX_DIR", str(demo_index.index_dir))
    settings = Settings()
    assert settings.reader_model == str(tiny_model_dir)
    pipeline = Pipeline(settings, embedder=embedder)
    answer = pipeline.ask("Who leads the Canadian delegation?")
    index = pipeline.index
    candidates = [answer, *answer.alternatives]
    assert any(c.citations for c in candidates)
    for candidate in candidates:
        for citation in candidate.citations:
            verify_citation(citation, index.document(citation.doc_id))
    assert 0.0 <= answer.confidence <= 1.0


def test_a_missing_reader_model_is_a_clear_error(tmp_path):
    reader = ExtractiveReader(str(tmp_path / "absent"))
    with pytest.raises(ReaderUnavailable, match="does not exist"):
        reader.read("who?", ["text"], top_n=1)


def test_calibration_is_a_logistic_of_the_margin():
    calibration = Calibration(a=2.0, b=-1.0)
    assert calibration(0.5) == pytest.approx(0.5)
    assert calibration(10) > 0.99 and calibration(-10) < 0.01
    assert calibration(-1e6) == 0.0


@pytest.mark.parametrize("text,span,expected", [
    ("One. The talks met on Aug. 25 in Ottawa. Three.", "Aug. 25", "The talks met on Aug. 25 in Ottawa."),
    ("Mr. Smith spoke first. Then Ms. Jones replied!", "Jones", "Then Ms. Jones replied!"),
    ("A line\nSecond line with the word here\nThird", "word", "Second line with the word here"),
    ('He said "we agree." Then left.', "agree", 'He said "we agree."'),
    ("No punctuation at all", "punctuation", "No punctuation at all"),
])
def test_sentence_bounds(text, span, expected):
    start = text.index(span)
    s, e = sentence_bounds(text, start, start + len(span))
    assert text[s:e] == expected


class ScriptedReader:
    """Gives every passage one guess (its first word) with a set confidence; records each call."""

    def __init__(self, confidences: dict[str, float]):
        self.confidences = confidences
        self.calls: list[list[str]] = []

    def read(self, question, passages, top_n):
        self.calls.append(list(passages))
        guesses = [SpanGuess(i, 0, len(p.split()[0]), self.confidences[p]) for i, p in enumerate(passages)]
        return sorted(guesses, key=lambda g: -g.confidence)[:top_n]


QUESTION = "Who leads the Canadian delegation?"


def _scripted(demo_index, embedder, first: float, others: float, early_stop: bool = True, **settings_update):
    settings = demo_index.model_copy(update={"reader_passages": 3, "reader_early_stop": early_stop,
                                             **settings_update})
    hits = Pipeline(settings, embedder=embedder).search(QUESTION)[:3]
    reader = ScriptedReader({h.chunk.text: first if n == 0 else others for n, h in enumerate(hits)})
    return Pipeline(settings, embedder=embedder, reader=reader).ask(QUESTION), reader, hits


@pytest.mark.slow
def test_a_confident_first_passage_stops_the_reading(demo_index, embedder):
    answer, reader, hits = _scripted(demo_index, embedder, first=0.9, others=0.95)
    assert reader.calls == [[hits[0].chunk.text]]
    assert answer.confidence == pytest.approx(0.9)
    assert answer.citations[0].doc_id == hits[0].chunk.doc_id
    assert answer.citations[0].start == hits[0].chunk.start
    assert [p.chunk_id for p in answer.passages[:3]] == [h.chunk.id for h in hits]


@pytest.mark.slow
def test_an_unsure_first_passage_reads_the_others_and_keeps_their_offsets(demo_index, embedder):
    answer, reader, hits = _scripted(demo_index, embedder, first=0.3, others=0.8)
    assert reader.calls == [[hits[0].chunk.text], [h.chunk.text for h in hits[1:]]]
    assert answer.confidence == pytest.approx(0.8)
    cited = {(c.doc_id, c.start) for c in answer.citations}
    assert (hits[1].chunk.doc_id, hits[1].chunk.start) in cited
    index = Pipeline(demo_index, embedder=embedder).index
    for candidate in [answer, *answer.alternatives]:
        for citation in candidate.citations:
            verify_citation(citation, index.document(citation.doc_id))


@pytest.mark.slow
def test_passages_the_reader_answers_from_move_ahead(demo_index, embedder):
    answer, _, hits = _scripted(demo_index, embedder, first=0.1, others=0.9)
    # Retrieval ranked hits[0] first, but by less than the reader's confidence gap.
    assert hits[0].score + 0.1 < hits[2].score + 0.9
    assert [p.chunk_id for p in answer.passages[:3]] == [hits[1].chunk.id, hits[2].chunk.id, hits[0].chunk.id]
    assert [p.score for p in answer.passages[:3]] == [round(h.score, 4) for h in (hits[1], hits[2], hits[0])]


@pytest.mark.slow
def test_reranking_by_the_reader_can_be_turned_off(demo_index, embedder):
    answer, _, hits = _scripted(demo_index, embedder, first=0.1, others=0.9, reader_rerank=False)
    assert [p.chunk_id for p in answer.passages[:3]] == [h.chunk.id for h in hits]


@pytest.mark.slow
def test_without_early_stop_every_passage_is_read_at_once(demo_index, embedder):
    _, reader, hits = _scripted(demo_index, embedder, first=0.9, others=0.95, early_stop=False)
    assert reader.calls == [[h.chunk.text for h in hits]]
