"""Article text and metadata of a web page, extracted with trafilatura.

trafilatura finds the article body and leaves out navigation, footers, cookie banners,
"related" lists, share bars and comments; it also reads the page's metadata (``<meta>``,
OpenGraph, JSON-LD, microdata). Its text is normalised here once, to paragraphs separated by
a blank line (a table's rows one per line), and that string is the document text every
citation offset points into.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, get_args

import trafilatura

Focus = Literal["balanced", "precision", "recall"]
# trafilatura's precision setting scored best on the saved pages (qa/bench/extraction.py): it
# also drops paywall and teaser boxes, at no cost in recall there.
DEFAULT_FOCUS: Focus = "precision"
# Only a date the page declares, never one guessed from its text or links.
_DATE_SEARCH = {"extensive_search": False, "original_date": True}
# The project's own <meta name="..."> tags (see corpus/README.md); they win over guesses.
_EXPLICIT_META = ("source", "published", "url")
_TABLE_RULE = re.compile(r"\|(?:\s*:?-+:?\s*\|)+")


@dataclass(frozen=True)
class HtmlPage:
    text: str
    title: str
    author: str
    source: str
    url: str
    published: str | None


def extract_html(markup: str, focus: Focus = DEFAULT_FOCUS) -> HtmlPage | None:
    """The page's article text and metadata; ``None`` when no article text is found."""
    if focus not in get_args(Focus):
        raise ValueError(f"unknown extraction focus {focus!r}")
    tree = trafilatura.load_html(markup)
    if tree is None:
        return None
    explicit = _explicit_meta(tree)
    found = trafilatura.bare_extraction(
        tree, with_metadata=True, include_comments=False, include_tables=True,
        favor_precision=focus == "precision", favor_recall=focus == "recall",
        date_extraction_params=_DATE_SEARCH)
    if found is None or not found.text:
        return None
    return HtmlPage(
        text=_paragraphs(found.text),
        title=found.title or "",
        author=found.author or "",
        source=explicit.get("source") or found.sitename or "",
        url=explicit.get("url") or found.url or "",
        published=explicit.get("published") or found.date,
    )


def _explicit_meta(tree) -> dict[str, str]:
    values = {}
    for name in _EXPLICIT_META:
        content = tree.xpath(f"//meta[@name='{name}']/@content")
        if content and content[0].strip():
            values[name] = content[0].strip()
    return values


def _paragraphs(text: str) -> str:
    """One paragraph per line of trafilatura's text; a table's rows stay together, one per line,
    without the Markdown rule under its header row."""
    blocks: list[list[str]] = []
    for raw in text.splitlines():
        line = " ".join(raw.split())
        if not line or _TABLE_RULE.fullmatch(line):
            continue
        if line.startswith("|") and blocks and blocks[-1][-1].startswith("|"):
            blocks[-1].append(line)
        else:
            blocks.append([line])
    return "\n\n".join("\n".join(block) for block in blocks)
