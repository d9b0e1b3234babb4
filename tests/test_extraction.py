import json
import shutil
from datetime import date

import pytest

from qa.bench.extraction import PAGES, bench_extraction, load_pages, token_overlap
from qa.html_text import DEFAULT_FOCUS, extract_html
from qa.loaders import load_corpus


@pytest.fixture(scope="module")
def measured():
    return bench_extraction(PAGES)


def test_the_fixture_set_is_varied_enough():
    assert len(load_pages(PAGES)) >= 20


def test_the_default_extractor_is_the_best_measured(measured):
    overall = measured["overall"]
    default = overall[f"trafilatura {DEFAULT_FOCUS}"]
    assert all(default["f1"] >= scores["f1"] for scores in overall.values())
    assert default["precision"] >= 0.97 and default["recall"] >= 0.97


def test_no_page_loses_much_of_its_article(measured):
    default = f"trafilatura {DEFAULT_FOCUS}"
    lossy = {page: s[default] for page, s in measured["per_page"].items()
             if s[default]["recall"] < 0.85 or s[default]["precision"] < 0.75}
    assert lossy == {}


@pytest.mark.parametrize("page, boilerplate", [
    ("news-cookie-banner", "We use cookies"),
    ("news-cookie-banner", "Accept all"),
    ("news-share-bar", "Share on Facebook"),
    ("news-related-list", "Related stories"),
    ("news-related-list", "Reservoirs fall to lowest level"),
    ("news-nav-footer", "All rights reserved"),
    ("blog-post", "Popular posts"),
    ("reader-comments", "beachlover77"),
    ("newsletter-inline", "Sign up for our newsletter"),
    ("paywall-teaser", "Subscribe to keep reading"),
    ("ads-interleaved", "Advertisement"),
    ("no-article-tag", "Most read"),
])
def test_boilerplate_is_left_out(page, boilerplate):
    text = extract_html((PAGES / f"{page}.html").read_text(encoding="utf-8")).text
    assert boilerplate not in text


@pytest.fixture(scope="module")
def fixture_documents(tmp_path_factory):
    corpus = tmp_path_factory.mktemp("pages")
    for page in PAGES.glob("*.html"):
        shutil.copy(page, corpus / page.name)
    result = load_corpus(corpus)
    assert result.skipped == []
    return {d.id: d for d in result.documents}


@pytest.mark.parametrize("page, title, source, published, author", [
    ("jsonld-metadata.html", "Storm knocks out power to 80,000 homes", "Northern Ledger",
     date(2024, 2, 21), "Ailsa Brennan"),
    ("opengraph-only.html", "Museum returns bronze statues to their home city", "Arts Dispatch",
     date(2023, 6, 14), "Nadia Okonjo"),
    ("news-nav-footer.html", "Port strike enters second week as talks stall", "Coastline Herald",
     date(2024, 3, 4), "Mira Castellanos"),
    ("microdata.html", "Wildfire contained after burning 3,000 hectares", "", date(2024, 8, 27),
     "Morag Innes"),
    ("minimal-page.html", "Town hall clock repaired", "", None, None),
])
def test_metadata_comes_from_the_page(fixture_documents, page, title, source, published, author):
    doc = fixture_documents[page]
    assert (doc.title, doc.source, doc.published, doc.metadata.get("author")) == (
        title, source, published, author)


def test_opengraph_url_is_kept(fixture_documents):
    assert fixture_documents["opengraph-only.html"].url == "https://arts-dispatch.example/museum-returns-bronzes"


def test_document_text_is_the_extracted_text_unchanged(fixture_documents):
    # Citation offsets point into document.text, so loading must not alter what was extracted.
    for doc_id, doc in fixture_documents.items():
        page = extract_html((PAGES / doc_id).read_text(encoding="utf-8"))
        assert doc.text == page.text
        assert "\n\n\n" not in doc.text and doc.text == doc.text.strip()


def test_token_overlap_counts_repeated_words():
    overlap = token_overlap("the cat saw the cat", "The cat saw a dog")
    assert (overlap.matched, overlap.extracted, overlap.expected) == (3, 5, 5)
    assert overlap.precision == overlap.recall == pytest.approx(0.6)
    assert token_overlap("", "words").f1 == 0.0


def test_bench_writes_its_table_and_json(tmp_path):
    from click.testing import CliRunner

    from qa.cli import cli

    pages = tmp_path / "pages"
    pages.mkdir()
    for name in ("table-page", "br-paragraphs"):
        for suffix in (".html", ".expected.txt"):
            shutil.copy(PAGES / f"{name}{suffix}", pages / f"{name}{suffix}")
    out = tmp_path / "extraction.json"
    run = CliRunner().invoke(cli, ["bench", "extraction", "--pages", str(pages), "--out", str(out)])
    assert run.exit_code == 0, run.output
    result = json.loads(out.read_text())
    assert result["pages"] == 2 and set(result["per_page"]) == {"table-page", "br-paragraphs"}
    assert set(result["overall"]) == {"trafilatura balanced", "trafilatura precision", "trafilatura recall"}
    assert "table-page" in run.output and "overall" in run.output


def test_a_page_without_expected_text_is_an_error(tmp_path):
    (tmp_path / "lonely.html").write_text("<p>text</p>")
    with pytest.raises(SystemExit, match="no expected text"):
        load_pages(tmp_path)


def test_an_unknown_focus_is_refused():
    with pytest.raises(ValueError, match="focus"):
        extract_html("<p>text</p>", "everything")


def test_table_rows_stay_together_one_per_line():
    text = extract_html((PAGES / "table-page.html").read_text(encoding="utf-8")).text
    assert "| Region | Q4 2023 | Q1 2024 |\n| North | 7.9 | 8.4 |\n| East |" in text
    assert "---" not in text


def test_br_breaks_become_paragraphs():
    text = extract_html((PAGES / "br-paragraphs.html").read_text(encoding="utf-8")).text
    assert text.split("\n\n")[0] == ("The Old Mill bridge over the river will be closed to cars from "
                                     "Monday while engineers replace its steel bearings, the county said.")
