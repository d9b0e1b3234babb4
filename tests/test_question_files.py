"""Question files in the project's JSONL shape: what is accepted, and what is refused by line."""

import json

import pytest

from qa.errors import DocumentError
from qa.eval.questions import load_questions_jsonl


def _write(tmp_path, *records):
    path = tmp_path / "questions.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return path


def test_answers_in_the_squad_habit_are_read_as_answers(tmp_path):
    path = _write(tmp_path,
                  {"id": "a", "question": "Who?", "answers": ["Ada", "Ada Lovelace"]},
                  {"id": "b", "question": "When?", "answers": [{"text": "1843", "answer_start": 3}]},
                  {"id": "c", "question": "Why?", "answer": None})
    questions = load_questions_jsonl(path).questions
    assert [q.answers for q in questions] == [("Ada", "Ada Lovelace"), ("1843",), ()]


def test_the_project_shape_still_reads(tmp_path):
    path = _write(tmp_path, {"id": "a", "question": "Who?", "answer": "Ada", "alternatives": ["Lovelace"],
                             "doc_id": "d.txt"})
    (question,) = load_questions_jsonl(path).questions
    assert question.answers == ("Ada", "Lovelace") and question.doc_ids == ("d.txt",)


@pytest.mark.parametrize("record,message", [
    ({"question": "Who?", "gold": "Ada"}, "unknown field"),
    ({"question": "Who?", "answer": "Ada", "answers": ["Ada"]}, "not both"),
    ({"question": "Who?", "answers": [""]}, "non-empty string"),
    ({"answer": "Ada"}, "question"),
])
def test_a_record_the_loader_does_not_understand_is_refused_by_line(tmp_path, record, message):
    path = _write(tmp_path, {"question": "Fine?", "answer": "yes"}, record)
    with pytest.raises(DocumentError, match=rf"questions.jsonl:2: .*{message}"):
        load_questions_jsonl(path)


def test_news_checks_are_read_with_the_question(tmp_path):
    path = _write(tmp_path, {"question": "How much so far?", "answer": "11.2 billion kroner",
                             "news": {"conflict": "7.5 billion kroner", "sources": 2, "outlets": ["A", "B"],
                                      "day": ["Friday", "2023-08-25"]}})
    (question,) = load_questions_jsonl(path).questions
    assert question.news.conflict == "7.5 billion kroner" and question.news.sources == 2
    assert question.news.outlets == ("A", "B") and question.news.day == ("Friday", "2023-08-25")


@pytest.mark.parametrize("news,message", [
    ({"latest": True}, "unknown news check"),
    ({"sources": "2"}, "whole number"),
    ({"day": ["Friday", "25 August"]}, "isoformat|Invalid"),
    ({}, "must be an object"),
])
def test_a_news_check_the_loader_does_not_understand_is_refused(tmp_path, news, message):
    path = _write(tmp_path, {"question": "How much?", "answer": "Ten", "news": news})
    with pytest.raises(DocumentError, match=rf":1: not a question record .*({message})"):
        load_questions_jsonl(path)


def test_the_news_question_set_reads_and_every_answer_is_in_its_document():
    from pathlib import Path

    corpus = Path(__file__).resolve().parent.parent / "corpus"
    questions = load_questions_jsonl(corpus / "news-questions.jsonl").questions
    assert len(questions) >= 60
    for question in questions:
        if question.doc_ids:
            assert question.answers[0] in (corpus / question.doc_ids[0]).read_text(encoding="utf-8")
    assert {check for q in questions if q.news for check in ("outlets", "sources", "conflict", "day")
            if getattr(q.news, check)} == {"outlets", "sources", "conflict", "day"}
