import random

import pytest

from qa.bench.duplicates import plant_copies
from qa.documents import make_document
from qa.duplicates import STORY, story_ids, with_story_ids
from qa.loaders import load_corpus
from qa.retrieval import _without_overlaps
from qa.store import StoredChunk

from .conftest import DEMO_CORPUS


@pytest.fixture(scope="module")
def demo_documents():
    """The demo corpus without news/, whose wire stories are carried by several outlets on purpose."""
    return [d for d in load_corpus(DEMO_CORPUS).documents if not d.id.startswith("news/")]


def test_stories_on_one_topic_are_not_copies(demo_documents):
    # The demo corpus is many stories about Canada, Ukraine and NATO: none is a copy of another.
    assert story_ids(demo_documents) == {}


def test_the_news_wire_stories_are_grouped_and_nothing_else():
    news = [d for d in load_corpus(DEMO_CORPUS).documents if d.id.startswith("news/")]
    groups: dict[str, set[str]] = {}
    for doc_id, story in story_ids(news).items():
        groups.setdefault(story, set()).add(doc_id.split("-", 3)[3])
    assert sorted(map(sorted, groups.values())) == [
        ["amber-coast-shell-plant.txt", "baltic-wire-shell-plant.txt", "vilnius-herald-shell-plant.txt"],
        ["coastline-times-grain-ship.txt", "danube-daily-grain-ship.txt", "harbour-wire-grain-ship.txt"]]


def test_edited_copies_are_grouped_with_their_original(demo_documents):
    originals = {d.id for d in demo_documents[:4]}
    planted = plant_copies(demo_documents, originals, copies=3)
    assert len(planted) == 12 and all(p.text != d.text for p in planted for d in demo_documents)
    stories = story_ids(demo_documents + planted)
    assert set(stories) == originals | {p.id for p in planted}
    assert all(stories[p.id] == stories[p.id.split("/", 1)[1]] for p in planted)
    assert len(set(stories.values())) == 4


def test_story_ids_do_not_depend_on_reading_order(demo_documents):
    corpus = demo_documents + plant_copies(demo_documents, {demo_documents[0].id}, copies=2)
    shuffled = corpus[:]
    random.Random(7).shuffle(shuffled)
    assert story_ids(shuffled) == story_ids(corpus)
    assert set(story_ids(corpus).values()) == {demo_documents[0].id}  # the first id in id order


def test_story_metadata_is_set_on_copies_and_cleared_on_the_rest():
    text = "The harbour authority and the dock workers agreed a new contract on Monday night. " * 3
    docs = [make_document("a", text), make_document("b", "Wire copy. " + text),
            make_document("c", "A different story about the weather and the tides this week.",
                          metadata={STORY: "stale", "section": "local"})]
    marked = {d.id: d for d in with_story_ids(docs)}
    assert marked["a"].metadata == {STORY: "a"} and marked["b"].metadata == {STORY: "a"}
    assert marked["c"].metadata == {"section": "local"}
    assert with_story_ids([docs[0]])[0] is docs[0]  # unchanged documents keep their content hash


def test_a_bad_threshold_is_refused():
    with pytest.raises(ValueError, match="threshold"):
        story_ids([], threshold=0)


class _FakeIndex:
    def __init__(self, chunks, documents):
        self._chunks = {c.id: c for c in chunks}
        self._documents = {d.id: d for d in documents}

    def chunks(self, ids):
        return [self._chunks[i] for i in ids if i in self._chunks]

    def documents(self, ids, with_text=True):
        return {i: self._documents[i] for i in ids if i in self._documents}


def test_retrieval_keeps_the_best_copy_of_a_story_only():
    documents = [make_document("wire", "x", metadata={STORY: "wire"}),
                 make_document("outlet", "x", metadata={STORY: "wire"}),
                 make_document("other", "x")]
    chunks = [StoredChunk(0, "wire", 0, 100, "a"), StoredChunk(1, "outlet", 0, 100, "a"),
              StoredChunk(2, "wire", 100, 200, "b"), StoredChunk(3, "other", 0, 100, "c")]
    ranked = [(i, 1.0 - i / 10, (0.0, 0.0, 0.0, 0.0)) for i in range(4)]
    hits = _without_overlaps(_FakeIndex(chunks, documents), ranked, top_k=5)
    assert [h.chunk.id for h in hits] == [0, 2, 3]
