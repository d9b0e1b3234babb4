"""Text of a PDF, page by page, with pypdf.

The pages' text is joined with a blank line between pages, and where each page starts is kept
(``metadata["page_starts"]``) so a citation's offset can be turned back into its page number.
"""

from __future__ import annotations

import io
from bisect import bisect_right
from dataclasses import dataclass
from datetime import datetime

from pypdf import PasswordType, PdfReader

from .documents import Document
from .errors import DocumentError

PAGE_STARTS = "page_starts"
_PAGE_BREAK = "\n\n"


@dataclass(frozen=True)
class PdfText:
    text: str
    page_starts: list[int]
    title: str
    author: str
    published: str | None


def extract_pdf(data: bytes) -> PdfText:
    """The text of every page; a ``DocumentError`` says why a PDF cannot be used."""
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED:
            raise DocumentError("encrypted PDF that needs a password")
        pages = [_page_text(page.extract_text()) for page in reader.pages]
        info = reader.metadata
    except DocumentError:
        raise
    except Exception as exc:  # noqa: BLE001 - pypdf raises many exception types on damaged files
        raise DocumentError(f"unreadable PDF ({type(exc).__name__}: {exc})") from None
    if not any(pages):
        raise DocumentError("PDF has no text layer (a scanned document?); run OCR on it first")
    starts, offset = [], 0
    for text in pages:
        starts.append(offset)
        offset += len(text) + len(_PAGE_BREAK)
    return PdfText(
        text=_PAGE_BREAK.join(pages),
        page_starts=starts,
        title=_info_text(info, "title"),
        author=_info_text(info, "author"),
        published=_info_date(info),
    )


def page_at(doc: Document, offset: int) -> int | None:
    """The 1-based page that ``offset`` of a PDF document falls on; ``None`` for other documents."""
    starts = doc.metadata.get(PAGE_STARTS)
    # Metadata can also come from a client through the API: only a list of offsets counts.
    if not isinstance(starts, list) or not starts or not all(type(s) is int for s in starts):
        return None
    return bisect_right(starts, offset)


def _page_text(text: str) -> str:
    # Normalised before offsets are counted, so make_document's own newline pass changes nothing.
    return text.replace("\r\n", "\n").replace("\r", "\n").strip()


def _info_text(info, name: str) -> str:
    value = getattr(info, name, None) if info else None
    return str(value).strip() if value else ""


def _info_date(info) -> str | None:
    try:
        created = info.creation_date if info else None
    except ValueError:  # a malformed date string is not worth losing the document over
        return None
    return created.date().isoformat() if isinstance(created, datetime) else None
