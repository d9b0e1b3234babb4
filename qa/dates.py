"""Dates in news: questions that ask for the latest state, and relative days in cited sentences.

Which words name a day is decided here; what day they name is left to dateparser, resolved
against the document's published date. Only expressions that name one day are resolved:
"last week" is a span of days, and a single date for it would claim more than the text says.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from functools import lru_cache

from .answers import ResolvedDate

# Questions about the state of things now, when the newest report is the one that counts.
_RECENCY = re.compile(r"\b(?:latest|newest|most recent(?:ly)?|now|currently|current|so far|as of|to date)\b",
                      re.IGNORECASE)

_WEEKDAY = r"(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)"
_MONTH = (r"(?:Jan(?:uary|\.)?|Feb(?:ruary|\.)?|Mar(?:ch|\.)?|Apr(?:il|\.)?|May|June?|July?|Aug(?:ust|\.)?|"
          r"Sept?(?:ember|\.)?|Oct(?:ober|\.)?|Nov(?:ember|\.)?|Dec(?:ember|\.)?)")
_COUNT = r"(?:\d{1,2}|one|two|three|four|five|six|seven|eight|nine|ten)"
# Names of days and months are matched capitalised only ("may 5" is no date); the rest either way.
_RELATIVE_DAY = re.compile(
    rf"\b(?:(?i:last|this|next)\s+)?{_WEEKDAY}\b"
    rf"|\b(?i:yesterday|today|tomorrow)\b"
    rf"|\b(?i:{_COUNT}\s+(?:days?|weeks?)\s+ago)\b")
# A month and day without a year: the year is the one that puts it nearest the published day.
_MONTH_DAY = re.compile(rf"\b{_MONTH}\s?\d{{1,2}}\b(?!,?\s*\d{{4}})")


def asks_for_recency(question: str) -> bool:
    return bool(_RECENCY.search(question))


def resolve_days(text: str, start: int, end: int, published: date | None) -> list[ResolvedDate]:
    """The day-naming relative expressions of ``text[start:end]``, resolved against ``published``.

    News reports mostly on what has happened, so a bare weekday is the latest one on or before
    the published day ("on Friday"); "next Friday" still looks ahead.
    """
    if published is None:
        return []
    relative = list(_RELATIVE_DAY.finditer(text, start, end))
    month_days = list(_MONTH_DAY.finditer(text, start, end))
    if not relative and not month_days:
        return []
    days = [(match, _parsed_day(match.group(), published, "past")) for match in relative]
    for match in month_days:
        parsed = _parsed_day(match.group(), published, "current_period")
        days.append((match, _nearest_year(parsed, published) if parsed else None))
    return [ResolvedDate(text=m.group(), start=m.start(), end=m.end(), date=day.isoformat())
            for m, day in sorted(days, key=lambda item: item[0].start()) if day is not None]


# The same few expressions ("on Friday", "Aug. 25") recur against the same published days, and
# dateparser takes about a millisecond for each.
@lru_cache(maxsize=4096)
def _parsed_day(expression: str, published: date, prefer: str) -> date | None:
    import dateparser

    settings = {"RELATIVE_BASE": datetime(published.year, published.month, published.day),
                "PREFER_DATES_FROM": prefer, "RETURN_AS_TIMEZONE_AWARE": False}
    parsed = dateparser.parse(expression, languages=["en"], settings=settings)
    return parsed.date() if parsed else None


def _nearest_year(day: date, published: date) -> date:
    candidates = []
    for year in (published.year - 1, published.year, published.year + 1):
        try:
            candidates.append(day.replace(year=year))
        except ValueError:  # Feb. 29 outside a leap year
            continue
    return min(candidates, key=lambda d: abs((d - published).days))
