"""Milvus boolean expressions: the filters of a question, and lists of ids, applied in the engine."""

from __future__ import annotations

from datetime import date
from typing import Sequence

from ..protocol import Filters

# A document's published day as YYYYMMDD; documents of unknown day have 0.
UNKNOWN_DAY = 0
_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"})


def day_number(day: date | None) -> int:
    return day.year * 10_000 + day.month * 100 + day.day if day else UNKNOWN_DAY


def day_of(number: int) -> date | None:
    return date(number // 10_000, number // 100 % 100, number % 100) if number != UNKNOWN_DAY else None


def quoted(text: str) -> str:
    return '"' + text.translate(_ESCAPES) + '"'


def is_in(field: str, values: Sequence[str] | Sequence[int]) -> str:
    items = ", ".join(quoted(v) if isinstance(v, str) else str(int(v)) for v in values)
    return f"{field} in [{items}]"


def matching(filters: Filters) -> str:
    """The expression over the ``doc_id``, ``source`` and ``day`` fields that every collection
    carries; empty when every document is allowed. A day bound leaves out documents of unknown
    day, as the local backend does."""
    clauses = []
    if filters.sources:
        clauses.append(is_in("source", filters.sources))
    if filters.doc_ids:
        clauses.append(is_in("doc_id", filters.doc_ids))
    if filters.since:
        clauses.append(f"day >= {day_number(filters.since)}")
    if filters.until:
        clauses.append(f"day > {UNKNOWN_DAY} and day <= {day_number(filters.until)}")
    return " and ".join(clauses)
