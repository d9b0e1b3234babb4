"""The document type every loader produces."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from .errors import DocumentError


@dataclass(frozen=True)
class Document:
    id: str
    title: str
    text: str
    source: str = ""
    url: str = ""
    published: date | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def content_hash(self) -> str:
        """Changes whenever anything indexed about the document changes."""
        payload = json.dumps(
            [self.title, self.text, self.source, self.url, self.published_iso, self.metadata],
            sort_keys=True,
            ensure_ascii=False,
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()

    @property
    def published_iso(self) -> str | None:
        return self.published.isoformat() if self.published else None


def parse_date(value: Any) -> date | None:
    """Accept ``YYYY-MM-DD`` (optionally followed by a time); ``None``/empty means unknown."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise DocumentError(f"published must be a date string, got {type(value).__name__}")
    try:
        return date.fromisoformat(value.strip()[:10])
    except ValueError:
        raise DocumentError(f"published is not a YYYY-MM-DD date: {value[:40]!r}") from None


def make_document(
    doc_id: str,
    text: Any,
    *,
    title: Any = "",
    source: Any = "",
    url: Any = "",
    published: Any = None,
    metadata: Any = None,
) -> Document:
    """Validate raw fields (from a file, a JSONL line or an API request) into a Document."""
    if not isinstance(doc_id, str) or not doc_id.strip():
        raise DocumentError("id must be a non-empty string")
    if len(doc_id) > 512:
        raise DocumentError("id is longer than 512 characters")
    if not isinstance(text, str):
        raise DocumentError("text is missing or not a string")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise DocumentError("text is empty")
    for name, value in (("title", title), ("source", source), ("url", url)):
        if value is not None and not isinstance(value, str):
            raise DocumentError(f"{name} must be a string")
    if metadata is not None and not isinstance(metadata, dict):
        raise DocumentError("metadata must be an object")
    return Document(
        id=doc_id,
        title=(title or "").strip() or doc_id,
        text=text,
        source=(source or "").strip(),
        url=(url or "").strip(),
        published=parse_date(published),
        metadata=dict(metadata or {}),
    )
