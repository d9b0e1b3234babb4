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
