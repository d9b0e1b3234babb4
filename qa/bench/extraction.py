"""Article extraction measured: token precision and recall of each HTML extractor.

Each page ``NAME.html`` in the pages folder has its expected article text (headline and body)
beside it in ``NAME.expected.txt``. Text is compared as bags of lowercase word tokens, so line breaks and
spacing do not count, while boilerplate that leaks in costs precision and body text that is
lost costs recall.

    qa bench extraction [--pages DIR] [--out bench-results/extraction.json]
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import get_args

from ..html_text import Focus, extract_html
from .indexing import write_json

PAGES = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "pages"
_TOKEN = re.compile(r"\w+")


def _text_of(markup: str, focus: Focus) -> str:
    page = extract_html(markup, focus)
    return page.text if page else ""


EXTRACTORS: dict[str, Callable[[str], str]] = {
    f"trafilatura {focus}": partial(_text_of, focus=focus) for focus in get_args(Focus)}


@dataclass(frozen=True)
class Overlap:
    matched: int
    extracted: int
    expected: int

    @property
    def precision(self) -> float:
        return self.matched / self.extracted if self.extracted else 0.0

    @property
    def recall(self) -> float:
        return self.matched / self.expected if self.expected else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def __add__(self, other: Overlap) -> Overlap:
        return Overlap(self.matched + other.matched, self.extracted + other.extracted,
                       self.expected + other.expected)

    def as_dict(self) -> dict[str, float]:
        return {"precision": round(self.precision, 4), "recall": round(self.recall, 4),
                "f1": round(self.f1, 4)}


def token_overlap(extracted: str, expected: str) -> Overlap:
    got, want = Counter(_tokens(extracted)), Counter(_tokens(expected))
    return Overlap(sum((got & want).values()), sum(got.values()), sum(want.values()))


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def load_pages(folder: Path) -> dict[str, tuple[str, str]]:
    """Page name -> (markup, expected text); a page without its expected text is an error."""
    pages = {}
    for html in sorted(folder.glob("*.html")):
        expected = html.with_name(html.stem + ".expected.txt")
        if not expected.is_file():
            raise SystemExit(f"{html} has no expected text ({expected.name})")
        pages[html.stem] = (html.read_text(encoding="utf-8"), expected.read_text(encoding="utf-8"))
    if not pages:
        raise SystemExit(f"no .html pages in {folder}")
    return pages


def run(folder: Path, out: Path) -> dict:
    """Measure every extractor on the pages of ``folder``, print the table and write the JSON."""
    result = bench_extraction(folder)
    print_report(result)
    write_json(out, result)
    return result


def bench_extraction(folder: Path) -> dict:
    pages = load_pages(folder)
    per_page: dict[str, dict[str, dict[str, float]]] = {}
    totals = {name: Overlap(0, 0, 0) for name in EXTRACTORS}
    for page, (markup, expected) in pages.items():
        per_page[page] = {}
        for name, extract in EXTRACTORS.items():
            overlap = token_overlap(extract(markup), expected)
            totals[name] += overlap
            per_page[page][name] = overlap.as_dict()
    # Overall figures pool the tokens of every page, so a long page weighs more than a short one.
    overall = {name: total.as_dict() for name, total in totals.items()}
    return {"pages": len(pages), "per_page": per_page, "overall": overall}


def print_report(result: dict) -> None:
    names = list(result["overall"])
    width = max(len(page) for page in result["per_page"])
    header = f"{'page':<{width}}  " + "  ".join(f"{name:>22}" for name in names)
    print(f"Token precision / recall against the expected article text ({result['pages']} pages)")
    print(header)
    print("-" * len(header))
    rows = [*result["per_page"].items(), ("overall", result["overall"])]
    for page, scores in rows:
        if page == "overall":
            print("-" * len(header))
        cells = "  ".join(f"{_pair(scores[n]):>22}" for n in names)
        print(f"{page:<{width}}  {cells}")


def _pair(scores: dict[str, float]) -> str:
    return f"{scores['precision']:.3f} / {scores['recall']:.3f}"
