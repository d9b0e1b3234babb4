"""Sentence boundaries: around a span for citations, and every sentence of a text for the index."""

from __future__ import annotations

import re

# A sentence ends at . ! ? (plus closing quotes/brackets) followed by space, or at a line break.
_BOUNDARY = re.compile(r"(?:[.!?…][\"'”’)\]]*\s+|\n+)")
# Periods that rarely end a sentence in news prose: titles, months, initials, "No.", "U.S.".
_ABBREVIATION = re.compile(
    r"(?:\b(?:Mr|Mrs|Ms|Dr|Prof|Sen|Rep|Gov|Gen|Col|Lt|Sgt|St|Jr|Sr|No|Nos|vs|etc|approx|"
    r"Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec|Inc|Ltd|Co|Corp)|\b[A-Z]|\b(?:[A-Za-z]\.)+[A-Za-z])\.$")


def _is_boundary(text: str, match: re.Match) -> bool:
    if "\n" in match.group():
        return True
    return not _ABBREVIATION.search(text[max(0, match.start() - 12): match.start() + 1])


def sentence_bounds(text: str, start: int, end: int) -> tuple[int, int]:
    """The [start, end) of the sentence(s) of ``text`` holding the span [start, end)."""
    sentence_start = 0
    for match in _BOUNDARY.finditer(text, 0, start):
        if match.end() <= start and _is_boundary(text, match):
            sentence_start = match.end()
    sentence_end = len(text)
    for match in _BOUNDARY.finditer(text, max(end - 1, sentence_start)):
        if match.start() >= end - 1 and _is_boundary(text, match):
            sentence_end = match.start() + len(match.group().rstrip())
            break
    return sentence_start, max(strip_span(text, sentence_start, sentence_end)[1], end)


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """The [start, end) of every sentence of ``text``, without surrounding whitespace."""
    spans, start = [], 0
    for match in _BOUNDARY.finditer(text):
        if _is_boundary(text, match):
            spans.append((start, match.end()))
            start = match.end()
    spans.append((start, len(text)))
    return [trimmed for span in spans if (trimmed := strip_span(text, *span))[0] < trimmed[1]]


def next_sentence_start(text: str, position: int) -> int | None:
    """Where the first sentence beginning after ``position`` starts; None if none does."""
    for match in _BOUNDARY.finditer(text, position):
        if match.end() < len(text) and _is_boundary(text, match):
            return match.end()
    return None


def strip_span(text: str, start: int, end: int) -> tuple[int, int]:
    """[start, end) without the whitespace at either edge (start == end if nothing else is left)."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end
