"""Public question sets: SQuAD v1.1 JSON and BEIR folders, turned into documents and questions."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from ..documents import Document, make_document
from ..errors import DocumentError
from .squad import read_articles


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    answers: tuple[str, ...] = ()          # empty: the corpus does not answer it
    doc_ids: tuple[str, ...] = ()           # documents that hold the answer (or are relevant)
    group: str = ""                         # e.g. the SQuAD article, for train/test splits
    news: NewsChecks | None = None          # what a news answer must also show


@dataclass(frozen=True)
class NewsChecks:
    """What an answer over news must show besides its text (each check is scored on its own)."""
    outlets: tuple[str, ...] = ()           # sources that must all be cited (copies of one story)
    sources: int | None = None              # independent sources the answer must count, at least
    conflict: str | None = None             # a different answer that must be shown beside it
    day: tuple[str, str] | None = None      # (text, YYYY-MM-DD): a relative day the citation resolves

    @classmethod
    def parse(cls, record: object) -> NewsChecks:
        if not isinstance(record, dict) or not record:
            raise TypeError('"news" must be an object with some of: outlets, sources, conflict, day')
        unknown = sorted(set(record) - {"outlets", "sources", "conflict", "day"})
        if unknown:
            raise ValueError(f"unknown news check(s) {', '.join(unknown)}")
        outlets = record.get("outlets", [])
        sources = record.get("sources")
        conflict = record.get("conflict")
        day = record.get("day")
        if not isinstance(outlets, list) or not all(isinstance(o, str) and o for o in outlets):
            raise TypeError('"outlets" must be a list of source names')
        if sources is not None and (type(sources) is not int or sources < 1):
            raise TypeError('"sources" must be a whole number of at least 1')
        if conflict is not None and not (isinstance(conflict, str) and conflict.strip()):
            raise TypeError('"conflict" must be a non-empty string')
        if day is not None:
            if not (isinstance(day, list) and len(day) == 2 and all(isinstance(v, str) for v in day)):
                raise TypeError('"day" must be ["text", "YYYY-MM-DD"]')
            date.fromisoformat(day[1])
        return cls(tuple(outlets), sources, conflict, tuple(day) if day else None)

    @property
    def answerable(self) -> bool:
        return bool(self.answers) or bool(self.doc_ids)


@dataclass
class QuestionSet:
    name: str
    questions: list[Question]
    documents: list[Document] = field(default_factory=list)  # empty: use an existing index
    corpus_name: str = ""  # names the bundled corpus, whatever the split of questions


def squad_paragraph_id(title: str, number: int) -> str:
    return f"{title}/p{number:03d}"


def load_squad(path: Path) -> QuestionSet:
    """Every paragraph becomes a document; every question keeps its gold paragraph and answers."""
    documents, questions = [], []
    for article in read_articles(path):
        title = article["title"]
        for number, paragraph in enumerate(article["paragraphs"]):
            doc_id = squad_paragraph_id(title, number)
            documents.append(make_document(doc_id, paragraph["context"], title=title.replace("_", " "),
                                           source="squad"))
            for qa in paragraph["qas"]:
                answers = tuple(dict.fromkeys(a["text"] for a in qa["answers"]))
                questions.append(Question(qa["id"], qa["question"], answers, (doc_id,), title))
    return QuestionSet(Path(path).stem, questions, documents, Path(path).stem)


def load_beir(folder: Path, split: str = "test") -> QuestionSet:
    """A BEIR folder: corpus.jsonl, queries.jsonl and qrels/<split>.tsv."""
    folder = Path(folder)
    documents = []
    with open(folder / "corpus.jsonl", encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            documents.append(make_document(str(record["_id"]), record.get("text") or record.get("title"),
                                           title=record.get("title") or "", source=folder.name))
    relevant: dict[str, list[str]] = {}
    with open(folder / "qrels" / f"{split}.tsv", encoding="utf-8") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            if int(row["score"]) > 0:
                relevant.setdefault(row["query-id"], []).append(row["corpus-id"])
    questions = []
    with open(folder / "queries.jsonl", encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            qid = str(record["_id"])
            if qid in relevant:
                questions.append(Question(qid, record["text"], (), tuple(relevant[qid]), split))
    return QuestionSet(f"{folder.name}-{split}", questions, documents, folder.name)


QUESTION_FIELDS = {"id", "question", "answer", "answers", "alternatives", "doc_id", "news"}


def load_questions_jsonl(path: Path) -> QuestionSet:
    """The project's format: {"id", "question", "answer" (null: unanswerable), "doc_id", "alternatives"?}.

    ``"answers": [...]`` (strings, or SQuAD's ``{"text": ...}`` records) is accepted in place of
    answer and alternatives. A record with any other field is refused, naming its line, so that a
    question set in another shape is never silently read as unanswerable.
    """
    questions = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            questions.append(_question(record, number))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise DocumentError(f"{path}:{number}: not a question record ({exc})") from None
    return QuestionSet(Path(path).stem, questions)


def _question(record: dict, number: int) -> Question:
    if not isinstance(record, dict):
        raise TypeError("expected a JSON object")
    unknown = sorted(set(record) - QUESTION_FIELDS)
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(QUESTION_FIELDS))}")
    if "answers" in record:
        if "answer" in record or "alternatives" in record:
            raise ValueError('give "answers", or "answer" with "alternatives", not both')
        answers = tuple(a["text"] if isinstance(a, dict) else a for a in record["answers"])
    else:
        answer = record.get("answer")
        answers = () if answer is None else (answer, *record.get("alternatives", []))
    if not all(isinstance(a, str) and a.strip() for a in answers):
        raise ValueError("every answer must be a non-empty string")
    if not isinstance(record["question"], str):
        raise TypeError("the question must be a string")
    doc_id = record.get("doc_id")
    news = NewsChecks.parse(record["news"]) if "news" in record else None
    if news and not answers:
        raise ValueError('"news" checks need an answer')
    return Question(str(record.get("id", number)), record["question"], answers, (doc_id,) if doc_id else (),
                    news=news)
