"""The front page and docs/ link only inside the repository, to files and headings that exist."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", ROOT / "index" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    return {_slug(line.lstrip("#")) for line in page.read_text(encoding="utf-8").splitlines()
            if line.startswith("#")}


def _links(page: Path) -> list[str]:
    return LINK.findall(page.read_text(encoding="utf-8"))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_stay_in_the_repository_and_resolve(page):
    for link in _links(page):
        assert "://" not in link and not link.startswith("mailto:"), f"{link} leaves the repository"
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        assert target.is_relative_to(ROOT), f"{link} leaves the repository"
        assert target.exists(), f"{link}: no such file"
        if anchor:
            assert anchor in _anchors(target), f"{link}: no such heading in {target.name}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_paths_outside_the_checkout_or_issue_numbers(page):
    text = page.read_text(encoding="utf-8")
    assert "../shared" not in text
    assert not re.search(r"\bissues? #?\d", text, re.IGNORECASE)


def test_slug_matches_github_for_punctuated_headings():
    assert _slug(" Speed: latency, warm (2026-11-29, previous reader)") == "speed-latency-warm-2026-11-29-previous-reader"
    assert _slug("BEIR SciFact, nDCG@10") == "beir-scifact-ndcg10"
