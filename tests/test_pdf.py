from datetime import date

import pytest

from qa.documents import make_document
from qa.errors import DocumentError
from qa.loaders import load_corpus
from qa.pdf_text import PAGE_STARTS, extract_pdf, page_at
from qa.pipeline import _cite
from qa.reading import SpanGuess
from qa.retrieval import Hit
from qa.store import StoredChunk

from .pdfs import make_pdf

PAGES = ["The ministry report covers grain exports.", "Exports rose by 14 percent in March.",
         "Shipments left from Odesa (mostly) by sea."]


def test_pdf_pages_are_joined_and_their_starts_kept():
    pdf = extract_pdf(make_pdf(PAGES, title="Export report", author="Trade Ministry",
                               created="D:20240312101500+01'00'"))
    assert [pdf.text[start:start + len(page)] for start, page in zip(pdf.page_starts, PAGES)] == PAGES
    assert (pdf.title, pdf.author, pdf.published) == ("Export report", "Trade Ministry", "2024-03-12")


def test_pdf_loads_as_a_document_with_page_starts(tmp_path):
    (tmp_path / "report.pdf").write_bytes(make_pdf(PAGES, title="Export report", author="Trade Ministry",
                                                   created="D:20240312"))
    result = load_corpus(tmp_path)
    assert result.skipped == []
    doc = result.documents[0]
    assert (doc.id, doc.title, doc.published) == ("report.pdf", "Export report", date(2024, 3, 12))
    assert doc.metadata["author"] == "Trade Ministry"
    starts = doc.metadata[PAGE_STARTS]
    assert [page_at(doc, s) for s in starts] == [1, 2, 3]
    assert page_at(doc, starts[1] - 1) == 1 and page_at(doc, len(doc.text) - 1) == 3


def test_a_citation_carries_its_page_and_exact_offsets(tmp_path):
    (tmp_path / "report.pdf").write_bytes(make_pdf(PAGES))
    doc = load_corpus(tmp_path).documents[0]
    start = doc.text.index("14 percent")
    chunk = StoredChunk(id=0, doc_id=doc.id, start=start - 12, end=len(doc.text),
                        text=doc.text[start - 12:])
    hit = Hit(chunk=chunk, score=1.0, dense_score=1.0, sentence_score=0.0, lexical_score=0.0,
              sentence_lexical_score=0.0)
    _, citation = _cite(SpanGuess(passage_index=0, start=12, end=22, confidence=0.9), [hit], {doc.id: doc})
    assert citation.quote == "14 percent" == doc.text[citation.start:citation.end]
    assert citation.page == 2


@pytest.mark.parametrize("metadata", [None, {PAGE_STARTS: []}, {PAGE_STARTS: "0,10"},
                                      {PAGE_STARTS: [0, "10"]}])
def test_documents_without_usable_page_starts_have_no_page(metadata):
    assert page_at(make_document("a.txt", "some text", metadata=metadata), 3) is None


def test_pdf_with_untitled_metadata_falls_back_to_its_id(tmp_path):
    (tmp_path / "plain.pdf").write_bytes(make_pdf(["Only a line."]))
    doc = load_corpus(tmp_path).documents[0]
    assert doc.title == "plain.pdf" and doc.published is None and "author" not in doc.metadata


def test_owner_only_encryption_still_opens():
    assert extract_pdf(make_pdf(["Readable text."], user_password="")).text == "Readable text."


@pytest.mark.parametrize("data, reason", [
    (make_pdf([None, None]), "no text layer"),
    (make_pdf(["Locked text."], user_password="secret"), "needs a password"),
    (make_pdf(PAGES)[:300], "unreadable PDF"),
    (b"%PDF-1.7\nnot really a pdf", "unreadable PDF"),
])
def test_unusable_pdfs_raise_a_reason(data, reason):
    with pytest.raises(DocumentError, match=reason):
        extract_pdf(data)


def test_bad_pdfs_are_skipped_and_the_batch_goes_on(tmp_path):
    (tmp_path / "scan.pdf").write_bytes(make_pdf([None]))
    (tmp_path / "locked.pdf").write_bytes(make_pdf(["x"], user_password="secret"))
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4\n%garbage")
    (tmp_path / "good.pdf").write_bytes(make_pdf(["Kept."]))
    result = load_corpus(tmp_path)
    assert [d.id for d in result.documents] == ["good.pdf"]
    reasons = {s.path: s.reason for s in result.skipped}
    assert set(reasons) == {"scan.pdf", "locked.pdf", "broken.pdf"}
    assert "no text layer" in reasons["scan.pdf"] and "password" in reasons["locked.pdf"]
    assert reasons["broken.pdf"].startswith("unreadable PDF")
