"""Turn files into Documents: .txt, .md, .html/.htm, .pdf and .jsonl.

A file or line that cannot be used is reported as a ``Skipped`` entry and the batch goes on.
Document ids are paths relative to the corpus root (or the JSONL ``id``), so they are stable.
"""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from .documents import Document, make_document
from .errors import DocumentError
from .html_text import extract_html
from .pdf_text import PAGE_STARTS, extract_pdf

SUFFIXES = {".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".jsonl"}
IGNORE_FILE = ".qaignore"
# "Key: value" lines at the top of a .txt/.md file, ended by a blank line.
_HEADER_LINE = re.compile(r"^(title|source|published|date|url)\s*:\s*(.*)$", re.IGNORECASE)
_MD_HEADING = re.compile(r"^#\s+(.+?)\s*#*\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"skipped {where}: {self.reason}"


@dataclass
class LoadResult:
    documents: list[Document] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


def load_corpus(root: Path, *, max_file_bytes: int = 20_000_000) -> LoadResult:
    """Load every supported file under ``root`` (or ``root`` itself when it is a file)."""
    root = Path(root)
    if not root.exists():
        raise DocumentError(f"corpus path does not exist: {root}")
    result = LoadResult()
    seen: dict[str, str] = {}
    base = root if root.is_dir() else root.parent
    for path in _corpus_files(root):
        rel = path.relative_to(base).as_posix()
        for item in _load_file(path, rel, base, max_file_bytes):
            if isinstance(item, Skipped):
                result.skipped.append(item)
            elif item.id in seen:
                result.skipped.append(Skipped(rel, f"duplicate id {item.id!r} (first in {seen[item.id]})"))
            else:
                seen[item.id] = rel
                result.documents.append(item)
    return result


def _corpus_files(root: Path) -> Iterator[Path]:
    if root.is_file():
        yield root
        return
    patterns = _ignore_patterns(root)
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if any(part.startswith(".") for part in path.relative_to(root).parts):
            continue
        if any(fnmatch.fnmatch(rel, p) for p in patterns):
            continue
        if path.suffix.lower() in SUFFIXES and (path.is_file() or path.is_symlink()):
            yield path


def _ignore_patterns(root: Path) -> list[str]:
    ignore = root / IGNORE_FILE
    if not ignore.is_file():
        return []
    lines = ignore.read_text(encoding="utf-8", errors="replace").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def _load_file(path: Path, rel: str, base: Path, max_bytes: int) -> Iterator[Document | Skipped]:
    suffix = path.suffix.lower()
    try:
        data = _read_bytes(path, base, max_bytes)
        if suffix == ".pdf":
            yield _pdf_document(rel, data)
            return
        text = _decode(data)
        if suffix == ".jsonl":
            yield from _jsonl_documents(text, rel)
        elif suffix in (".html", ".htm"):
            yield _html_document(rel, text)
        else:
            yield _plain_document(rel, text, markdown=suffix in (".md", ".markdown"))
    except DocumentError as exc:
        yield Skipped(rel, str(exc))


def _read_bytes(path: Path, base: Path, max_bytes: int) -> bytes:
    resolved = path.resolve()
    if not resolved.is_relative_to(base.resolve()):
        raise DocumentError("link points outside the corpus root")
    if not resolved.is_file():
        raise DocumentError("not a regular file")
    size = resolved.stat().st_size
    if size == 0:
        raise DocumentError("empty file")
    if size > max_bytes:
        raise DocumentError(f"file is {size:,} bytes, over the {max_bytes:,} byte limit")
    return resolved.read_bytes()


def _decode(data: bytes) -> str:
    if b"\x00" in data[:8192]:
        raise DocumentError("binary file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DocumentError(f"not valid UTF-8 (byte {exc.start})") from None


def _html_document(doc_id: str, markup: str) -> Document:
    page = extract_html(markup)
    if page is None:
        raise DocumentError("no article text found in the page")
    return make_document(
        doc_id, page.text, title=page.title, source=page.source, url=page.url,
        published=page.published, metadata={"author": page.author} if page.author else None)


def _pdf_document(doc_id: str, data: bytes) -> Document:
    pdf = extract_pdf(data)
    metadata = {PAGE_STARTS: pdf.page_starts, **({"author": pdf.author} if pdf.author else {})}
    return make_document(doc_id, pdf.text, title=pdf.title, published=pdf.published, metadata=metadata)


def _plain_document(doc_id: str, text: str, *, markdown: bool) -> Document:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    fields: dict[str, str] = {}
    lines = text.split("\n")
    count = 0
    for line in lines:
        match = _HEADER_LINE.match(line)
        if not match:
            break
        fields[match.group(1).lower()] = match.group(2).strip()
        count += 1
    if fields and count < len(lines) and not lines[count].strip():
        text = "\n".join(lines[count + 1:])
    else:
        fields = {}
    title = fields.get("title", "")
    if not title and markdown and (heading := _MD_HEADING.search(text)):
        title = heading.group(1)
    if not title:
        title = next((line.strip() for line in text.split("\n") if line.strip()), "")[:200]
    return make_document(
        doc_id, text, title=title, source=fields.get("source", ""), url=fields.get("url", ""),
        published=fields.get("published") or fields.get("date"),
    )


def _jsonl_documents(text: str, rel: str) -> Iterator[Document | Skipped]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            yield Skipped(rel, f"malformed JSON ({exc.msg})", number)
            continue
        if not isinstance(record, dict):
            yield Skipped(rel, "line is not a JSON object", number)
            continue
        try:
            yield document_from_record(record)
        except DocumentError as exc:
            yield Skipped(rel, str(exc), number)


def document_from_record(record: dict) -> Document:
    """A Document from a JSON object with id, text and optional title/source/url/published/metadata."""
    doc_id = record.get("id")
    if isinstance(doc_id, int) and not isinstance(doc_id, bool):
        doc_id = str(doc_id)
    return make_document(
        doc_id, record.get("text"), title=record.get("title"), source=record.get("source"),
        url=record.get("url"), published=record.get("published"), metadata=record.get("metadata"),
    )
