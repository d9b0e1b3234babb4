"""Near-duplicate grouping measured: distinct stories in the top 5, before and after.

The demo corpus is grown with planted copies of the stories its questions are about (each copy
re-edited the way outlets edit a wire story: its own dateline, the last paragraph cut), then
indexed twice (chunk vectors only), once without and once with story grouping. For every demo question the top 5
hits are counted in distinct stories, and whether the story that answers it is among them.

    qa bench duplicates [--copies 2] [--out bench-results/duplicates.json]
"""

from __future__ import annotations

import statistics
import tempfile
from dataclasses import replace
from pathlib import Path

from ..documents import Document
from ..duplicates import with_story_ids
from ..embedding import Embedder
from ..eval.questions import load_questions_jsonl
from ..indexing import write_documents
from ..loaders import load_corpus
from ..pipeline import Pipeline
from ..settings import Settings
from .indexing import print_table, write_json

CORPUS = Path(__file__).resolve().parents[2] / "corpus"
OUTLETS = ("Lakeshore Gazette", "Prairie Wire", "Harbour Evening News", "Summit Daily", "Valley Post")
TOP = 5


def plant_copies(documents: list[Document], story_ids: set[str], copies: int) -> list[Document]:
    """Edited copies of each document in ``story_ids``, one per outlet, under new ids."""
    if not 1 <= copies <= len(OUTLETS):
        raise ValueError(f"copies must be between 1 and {len(OUTLETS)}")
    planted = []
    for doc in documents:
        if doc.id not in story_ids:
            continue
        paragraphs = doc.text.split("\n\n")
        for outlet in OUTLETS[:copies]:
            kept = paragraphs[:-1] if len(paragraphs) > 2 else paragraphs
            text = "\n\n".join([f"({outlet}) - {kept[0]}", *kept[1:]])
            slug = outlet.lower().replace(" ", "-")
            planted.append(replace(doc, id=f"{slug}/{doc.id}", source=outlet, text=text))
    return planted


def bench_duplicates(copies: int, out: Path) -> dict:
    questions = [q for q in load_questions_jsonl(CORPUS / "questions.jsonl").questions if q.doc_ids]
    originals = load_corpus(CORPUS).documents
    gold = {doc_id for q in questions for doc_id in q.doc_ids}
    planted = plant_copies(originals, gold, copies)
    corpus = originals + planted
    # The story a document really tells: a planted copy's is its original's id.
    truth = {doc.id: doc.id for doc in originals} | {doc.id: doc.id.split("/", 1)[1] for doc in planted}
    embedder = Embedder()
    result = {"questions": len(questions), "documents": len(corpus), "planted_copies": len(planted)}
    with tempfile.TemporaryDirectory() as scratch:
        for label, documents in (("before", corpus), ("after", with_story_ids(corpus))):
            # Chunk vectors only: sentence vectors would not change what is a copy of what.
            settings = Settings(index_dir=Path(scratch) / label / "index", corpus_dir=CORPUS,
                                sentence_vectors=False)
            write_documents(documents, settings, embedder)
            pipeline = Pipeline(settings, embedder=embedder)
            distinct, answering = [], 0
            for question in questions:
                stories = [truth[hit.chunk.doc_id] for hit in pipeline.search(question.question, TOP)]
                distinct.append(len(set(stories)))
                answering += any(doc_id in stories for doc_id in question.doc_ids)
            grouped = sum(1 for doc in documents if "story" in doc.metadata)
            result[label] = {"mean_distinct_stories_top5": round(statistics.mean(distinct), 3),
                             "questions_with_5_distinct": sum(d == TOP for d in distinct),
                             "answering_story_in_top5": answering, "documents_grouped": grouped}
    print_table(f"Distinct stories in the top {TOP} ({len(questions)} questions, "
                f"{len(planted)} planted copies)", [
        (f"{label}: {name.replace('_', ' ')}", str(value))
        for label in ("before", "after") for name, value in result[label].items()])
    write_json(out, result)
    return result
