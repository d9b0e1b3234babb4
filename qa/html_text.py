"""Main text, title and metadata of an HTML page, with the standard library's parser."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

# Content of these elements is never article text.
_SKIPPED = {"script", "style", "nav", "header", "footer", "aside", "noscript", "template",
            "form", "svg", "iframe", "button", "select", "head"}
# These end a paragraph.
_BLOCKS = {"p", "div", "section", "article", "main", "li", "ul", "ol", "h1", "h2", "h3", "h4",
           "h5", "h6", "blockquote", "pre", "table", "tr", "br", "hr", "figure", "figcaption",
           "dd", "dt", "body"}
_VOID = {"br", "hr", "img", "meta", "link", "input", "area", "base", "col", "embed", "source",
         "track", "wbr"}
_SPACES = re.compile(r"[ \t\f\v\u00a0]+")


@dataclass
class HtmlPage:
    title: str = ""
    text: str = ""
    meta: dict[str, str] = field(default_factory=dict)


class _Extractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = HtmlPage()
        self._skip_depth = 0
        self._in_title = False
        self._title: list[str] = []
        self._h1: list[str] = []
        self._in_h1 = False
        # Paragraphs inside <article>/<main> win over the rest of the page when present.
        self._focus_depth = 0
        self._focus: list[list[str]] = [[]]
        self._page: list[list[str]] = [[]]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "meta":
            key = dict(attrs).get("name") or dict(attrs).get("property") or ""
            content = dict(attrs).get("content")
            if key and content:
                self.page.meta[key.lower()] = content.strip()
            return
        if tag == "title":
            self._in_title = True
        if tag in _SKIPPED and tag not in _VOID:
            self._skip_depth += 1
        if tag in ("article", "main"):
            self._focus_depth += 1
        if tag == "h1":
            self._in_h1 = True
        if tag in _BLOCKS:
            self._break()

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        if tag in _SKIPPED and self._skip_depth:
            self._skip_depth -= 1
        if tag in ("article", "main") and self._focus_depth:
            self._focus_depth -= 1
        if tag == "h1":
            self._in_h1 = False
        if tag in _BLOCKS:
            self._break()

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self._title.append(data)
            return
        if self._skip_depth:
            return
        if self._in_h1:
            self._h1.append(data)
        self._page[-1].append(data)
        if self._focus_depth:
            self._focus[-1].append(data)

    def _break(self) -> None:
        for paragraphs in (self._page, self._focus):
            if paragraphs[-1]:
                paragraphs.append([])

    def result(self) -> HtmlPage:
        chosen = self._focus if any(self._focus) else self._page
        paragraphs = [_SPACES.sub(" ", "".join(p)).strip() for p in chosen]
        lines = [" ".join(p.split()) for p in paragraphs if p.strip()]
        self.page.text = "\n\n".join(lines)
        title = " ".join("".join(self._title).split()) or " ".join("".join(self._h1).split())
        self.page.title = title
        return self.page


def extract_html(markup: str) -> HtmlPage:
    parser = _Extractor()
    parser.feed(markup)
    parser.close()
    return parser.result()
