"""Answers across sources: citations that resolve, every outlet's copy of a story cited, sources
counted once per story, and credible different answers from other sources shown as conflicts,
newest first when their dates differ."""

from __future__ import annotations

import re

from .answer_text import normalize_answer
from .answers import Candidate, Citation, DocumentFields
from .dates import resolve_days
from .documents import Document
from .duplicates import STORY
from .errors import CitationMismatch
from .pdf_text import page_at
from .retrieval import Hit
from .sentences import sentence_bounds
from .store import SearchBackend


class DocumentTexts:
    """The documents one answer draws on, each read from the backend with its text once."""

    def __init__(self, index: SearchBackend):
        self.index = index
        self._loaded: dict[str, Document] = {}

    def get(self, doc_ids: set[str]) -> dict[str, Document]:
        missing = sorted(doc_ids - self._loaded.keys())
        if missing:
            self._loaded.update(self.index.documents(missing))
        return {doc_id: self._loaded[doc_id] for doc_id in doc_ids if doc_id in self._loaded}


def cite(doc: Document, start: int, end: int) -> Citation:
    """The citation of ``doc.text[start:end]``, with its sentence, page, story and resolved dates."""
    sentence_start, sentence_end = sentence_bounds(doc.text, start, end)
    story = doc.metadata.get(STORY)
    citation = Citation(
        **DocumentFields.of(doc), start=start, end=end, quote=doc.text[start:end],
        sentence_start=sentence_start, sentence_end=sentence_end,
        sentence=doc.text[sentence_start:sentence_end], page=page_at(doc, start),
        story=story if isinstance(story, str) else None,
        dates=resolve_days(doc.text, sentence_start, sentence_end, doc.published))
    verify_citation(citation, doc)
    return citation


def verify_citation(citation: Citation, doc: Document) -> None:
    if doc.text[citation.start:citation.end] != citation.quote or not citation.quote:
        raise CitationMismatch(f"citation {citation.doc_id}[{citation.start}:{citation.end}] "
                               f"does not resolve to its quote {citation.quote!r}")
    if doc.text[citation.sentence_start:citation.sentence_end] != citation.sentence:
        raise CitationMismatch(f"citation sentence of {citation.doc_id} does not resolve")


def story_of(citation: Citation) -> str:
    return citation.story or citation.doc_id


def counted(candidate: Candidate) -> Candidate:
    """The candidate with its independent sources counted and its newest date."""
    dates = [c.published for c in candidate.citations if c.published]
    return candidate.model_copy(update={"sources": len({story_of(c) for c in candidate.citations}),
                                        "published": max(dates) if dates else None})


def with_story_copies(candidates: list[Candidate], texts: DocumentTexts) -> list[Candidate]:
    """Each candidate also citing the other copies of the stories it was found in.

    Retrieval keeps one copy of a story among the passages; the answer still names every outlet
    that carried it. A copy is cited where it holds the same sentence, or else the quote exactly
    once; a copy edited there is left out rather than cited somewhere it does not say so.
    """
    stories = {c.story for candidate in candidates for c in candidate.citations if c.story}
    copies = texts.index.story_copies(sorted(stories)) if stories else {}
    documents = texts.get({doc_id for ids in copies.values() for doc_id in ids})
    result = []
    for candidate in candidates:
        citations = list(candidate.citations)
        cited = {c.doc_id for c in citations}
        for citation in candidate.citations:
            for doc_id in copies.get(citation.story or "", []):
                if doc_id not in cited and doc_id in documents:
                    copy = _copy_citation(citation, documents[doc_id])
                    if copy is not None:
                        citations.append(copy)
                        cited.add(doc_id)
        result.append(counted(candidate.model_copy(update={"citations": citations})))
    return result


def with_passage_support(candidate: Candidate, hits: list[Hit], texts: DocumentTexts) -> Candidate:
    """The candidate also citing the retrieved passages of other stories that state it word for word.

    The reader stops at the first passage when it is sure; another source that says the same
    thing still counts towards agreement, found by its exact words within a retrieved passage.
    """
    stories = {story_of(c) for c in candidate.citations}
    found = []
    for hit in hits:
        at = _whole_words(hit.chunk.text, candidate.text)
        if at is not None and hit.chunk.doc_id not in stories:
            found.append((hit.chunk, at))
    if not found:
        return candidate
    documents = texts.get({chunk.doc_id for chunk, _ in found})
    citations = list(candidate.citations)
    for chunk, at in found:
        doc = documents.get(chunk.doc_id)
        if doc is None:
            continue
        story = doc.metadata.get(STORY, doc.id)
        if story not in stories:
            stories.add(story)
            citations.append(cite(doc, chunk.start + at, chunk.start + at + len(candidate.text)))
    return counted(candidate.model_copy(update={"citations": citations}))


def _whole_words(text: str, phrase: str) -> int | None:
    match = re.search(rf"(?<!\w){re.escape(phrase)}(?!\w)", text)
    return match.start() if match else None


def _copy_citation(citation: Citation, copy: Document) -> Citation | None:
    at = copy.text.find(citation.sentence)
    if at >= 0 and copy.text.find(citation.sentence, at + 1) < 0:
        start = at + citation.start - citation.sentence_start
    else:
        start = copy.text.find(citation.quote)
        if start < 0 or copy.text.find(citation.quote, start + 1) >= 0:
            return None
    return cite(copy, start, start + len(citation.quote))


def conflicting(best: Candidate, other: Candidate, credible: float) -> bool:
    """Whether ``other`` is a credible, different answer from sources ``best`` does not cite."""
    if other.confidence < credible:
        return False
    mine, theirs = normalize_answer(best.text).split(), normalize_answer(other.text).split()
    if not mine or not theirs or _within(mine, theirs) or _within(theirs, mine):
        return False  # "Aug. 25" and "on Aug. 25" are one answer; "Eight" and "Eighteen" are not
    return not ({story_of(c) for c in best.citations} & {story_of(c) for c in other.citations})


def _within(words: list[str], other: list[str]) -> bool:
    """Whether ``words`` occur in ``other`` as a run of whole words."""
    return any(other[i:i + len(words)] == words for i in range(len(other) - len(words) + 1))


def arrange(candidates: list[Candidate], credible: float) -> tuple[list[Candidate], list[Candidate]]:
    """(the answer followed by its conflicts, the other candidates).

    When credible answers from different sources differ and so do their dates, the newest comes
    first: in news the later report is usually the update. Otherwise the most confident leads.
    """
    if candidates[0].confidence < credible:
        return candidates[:1], candidates[1:]
    best = candidates[0]
    conflicts = [c for c in candidates[1:] if conflicting(best, c, credible)]
    rest = [c for c in candidates[1:] if c not in conflicts]
    group = [best, *conflicts]
    if len({c.published for c in group}) > 1:
        group.sort(key=lambda c: c.published or "", reverse=True)
    return group, rest
