"""News habits: copies of one story, sources that agree or differ, dates that change the answer."""

from __future__ import annotations

from datetime import date

import pytest

from qa.answers import Candidate, Citation
from qa.dates import asks_for_recency, resolve_days
from qa.sources import arrange, conflicting


def _citation(doc_id: str, quote: str, published: str | None = None, story: str | None = None) -> Citation:
    sentence = f"They said {quote}."
    return Citation(doc_id=doc_id, title=doc_id, source=doc_id, url="", published=published, start=10,
                    end=10 + len(quote), quote=quote, sentence_start=0, sentence_end=len(sentence),
                    sentence=sentence, story=story)


def _candidate(text: str, confidence: float, *citations: Citation) -> Candidate:
    dates = [c.published for c in citations if c.published]
    return Candidate(text=text, confidence=confidence, citations=list(citations),
                     sources=len({c.story or c.doc_id for c in citations}), published=max(dates, default=None))


def test_credible_different_answers_from_other_sources_come_newest_first():
    older = _candidate("7.5 billion kroner", 0.81, _citation("ledger", "7.5 billion kroner", "2023-08-10"))
    newer = _candidate("11.2 billion kroner", 0.64, _citation("report", "11.2 billion kroner", "2023-10-02"))
    unsure = _candidate("five-year", 0.2, _citation("other", "five-year", "2023-11-01"))
    group, rest = arrange([older, newer, unsure], credible=0.5)
    assert [c.text for c in group] == ["11.2 billion kroner", "7.5 billion kroner"]
    assert rest == [unsure]


def test_undated_conflicts_keep_the_most_confident_first():
    first = _candidate("Vilnius", 0.9, _citation("a", "Vilnius"))
    second = _candidate("Riga", 0.7, _citation("b", "Riga"))
    assert [c.text for c in arrange([first, second], 0.5)[0]] == ["Vilnius", "Riga"]


@pytest.mark.parametrize("other, why", [
    (_candidate("on Aug. 25", 0.9, _citation("b", "on Aug. 25")), "the same answer, longer"),
    (_candidate("Riga", 0.9, _citation("copy", "Riga", story="story-1")), "a copy of the same story"),
    (_candidate("Riga", 0.3, _citation("b", "Riga")), "not credible"),
])
def test_what_is_not_a_conflict(other, why):
    best = _candidate("Aug. 25", 0.95, _citation("a", "Aug. 25", story="story-1"))
    assert not conflicting(best, other, 0.5), why
    assert conflicting(best, _candidate("Riga", 0.9, _citation("b", "Riga")), 0.5)


def test_a_longer_number_word_is_a_different_answer():
    eight = _candidate("Eight", 0.8, _citation("a", "Eight", "2023-08-24"))
    eighteen = _candidate("Eighteen", 0.7, _citation("b", "Eighteen", "2023-11-14"))
    assert conflicting(eight, eighteen, 0.5)
    assert [c.text for c in arrange([eight, eighteen], 0.5)[0]] == ["Eighteen", "Eight"]


def test_an_unsure_answer_has_no_conflicts():
    best = _candidate("Vilnius", 0.4, _citation("a", "Vilnius"))
    other = _candidate("Riga", 0.35, _citation("b", "Riga"))
    assert arrange([best, other], 0.5) == ([best], [other])


def test_relative_days_are_resolved_against_the_published_day():
    text = "Officials met on Friday, two days ago they spoke again, and the next round is on Sept. 5."
    days = {d.text: d.date for d in resolve_days(text, 0, len(text), date(2023, 8, 28))}
    assert days == {"Friday": "2023-08-25", "two days ago": "2023-08-26", "Sept. 5": "2023-09-05"}
    for day in resolve_days(text, 0, len(text), date(2023, 8, 28)):
        assert text[day.start:day.end] == day.text
    assert resolve_days(text, 0, len(text), None) == []
    # spans of days and dates with their year are left as they are; "may" is no month here
    plain = "Last week they may 5 times have met, and on Aug. 25, 2023 they signed."
    assert resolve_days(plain, 0, len(plain), date(2023, 8, 28)) == []


def test_questions_that_ask_for_the_latest():
    assert asks_for_recency("How much aid has Norway pledged so far this year?")
    assert asks_for_recency("What is the latest figure for Norway's aid?")
    assert not asks_for_recency("Which ship left Odesa first?")


@pytest.mark.slow
def test_one_answer_cites_every_outlet_of_a_story_and_counts_it_once(demo_pipeline):
    answer = demo_pipeline.ask("How much wheat did the Aurora Dawn carry out of Odesa?")
    assert not answer.abstained and "31,000 tonnes" in answer.text
    outlets = {c.source for c in answer.citations}
    assert {"Harbour Wire", "Danube Daily", "Coastline Times"} <= outlets
    # the three copies are one story; the reports that repeat the figure are sources of their own
    assert answer.sources == len({c.story or c.doc_id for c in answer.citations}) >= 2
    for citation in answer.citations:
        assert demo_pipeline.document(citation.doc_id).text[citation.start:citation.end] == citation.quote


@pytest.mark.slow
def test_the_latest_figure_comes_first_and_the_earlier_one_is_a_dated_conflict(demo_pipeline):
    answer = demo_pipeline.ask("How much aid has Norway given Ukraine so far this year?")
    assert not answer.abstained and "11.2 billion" in answer.text
    assert answer.citations[0].published == "2023-10-02"
    assert [c.published for c in answer.conflicts] == ["2023-08-10"] and "7.5 billion" in answer.conflicts[0].text


@pytest.mark.slow
def test_a_recency_question_ranks_the_newer_report_higher(demo_pipeline):
    question = "Norway's civilian and military aid to Ukraine this year after parliament approved a tranche"
    older, newer = "news/2023-08-10-fjord-ledger-norway-aid.txt", "news/2023-10-02-nordic-business-norway-aid.txt"

    def ranked(weight):
        hits = demo_pipeline.retriever().search(question, 5, recency_weight=weight)
        return [h.chunk.doc_id for h in hits], {h.chunk.doc_id: h.score for h in reversed(hits)}

    (plain, plain_score), (recent, recent_score) = ranked(0.0), ranked(1.0)
    assert plain.index(older) < plain.index(newer)  # the words are the older report's
    assert recent.index(newer) < plain.index(newer)
    # the newer report gains more than the older one: the gap between them narrows
    assert recent_score[older] - recent_score[newer] < plain_score[older] - plain_score[newer]


@pytest.mark.slow
def test_a_relative_day_in_the_cited_sentence_is_resolved(demo_pipeline):
    answer = demo_pipeline.ask("When did the Ukrainian deputy ministers meet their Canadian counterparts in Ottawa?")
    assert not answer.abstained and "Friday" in answer.text
    (citation,) = answer.citations
    assert {d.text: d.date for d in citation.dates}["Friday"] == "2023-08-25"


class _Stories:
    """Just enough of a SearchBackend for the source logic: documents and their stories."""

    def __init__(self, *documents):
        self.by_id = {doc.id: doc for doc in documents}

    def documents(self, doc_ids, *, with_text=True):
        return {i: self.by_id[i] for i in doc_ids if i in self.by_id}

    def story_copies(self, story_ids):
        copies = {}
        for doc in sorted(self.by_id.values(), key=lambda d: d.id):
            if doc.metadata.get("story") in story_ids:
                copies.setdefault(doc.metadata["story"], []).append(doc.id)
        return copies


def _story(doc_id: str, text: str, source: str, story: str | None = None):
    from qa.documents import make_document

    return make_document(doc_id, text, source=source, published="2023-09-12",
                         metadata={"story": story} if story else {})


def test_copies_are_cited_where_they_say_the_same_and_left_out_where_edited():
    from qa.sources import DocumentTexts, cite, with_story_copies

    wire = "The ship left Odesa on Monday. It carried 31,000 tonnes of wheat to Egypt."
    same = _story("copy-a", "Local intro. " + wire, "Outlet A", "wire")
    edited = _story("copy-b", "The ship left Odesa on Monday. It carried wheat to Egypt.", "Outlet B", "wire")
    original = _story("wire", wire, "Wire", "wire")
    index = _Stories(original, same, edited)
    start = wire.index("31,000 tonnes")
    candidate = _candidate("31,000 tonnes", 0.9, cite(original, start, start + len("31,000 tonnes")))
    (result,) = with_story_copies([candidate], DocumentTexts(index))
    assert [c.source for c in result.citations] == ["Wire", "Outlet A"]
    copy = result.citations[1]
    assert same.text[copy.start:copy.end] == "31,000 tonnes" and copy.story == "wire"
    assert result.sources == 1


def test_another_story_stating_the_answer_word_for_word_counts_as_a_second_source():
    from qa.retrieval import Hit
    from qa.sources import DocumentTexts, cite, with_passage_support
    from qa.store import StoredChunk

    first = _story("first", "Officials said 52 countries took part in Reykjavik.", "Ledger")
    second = _story("second", "In Reykjavik, 52 countries took part, organisers said.", "Report")
    other = _story("other", "In Reykjavik, 520 countries took part.", "Elsewhere")
    index = _Stories(first, second, other)
    hits = [Hit(StoredChunk(n, doc.id, 0, len(doc.text), doc.text), 1.0, 0, 0, 0, 0)
            for n, doc in enumerate((first, second, other))]
    start = first.text.index("52 countries")
    candidate = _candidate("52 countries", 0.8, cite(first, start, start + len("52 countries")))
    supported = with_passage_support(candidate, hits, DocumentTexts(index))
    assert [c.doc_id for c in supported.citations] == ["first", "second"]  # "520 countries" is not it
    assert supported.sources == 2
    assert second.text[supported.citations[1].start:supported.citations[1].end] == "52 countries"
