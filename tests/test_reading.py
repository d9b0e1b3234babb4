"""The Reader plumbing: a local Hugging Face extractive-QA model plugged in by path."""

import pytest

from qa.errors import ReaderUnavailable
from qa.pipeline import Pipeline, verify_citation
from qa.reading import Calibration, ExtractiveReader
from qa.sentences import sentence_bounds
from qa.settings import Settings


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
