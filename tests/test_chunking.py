import pytest

from qa.chunking import Chunker
from qa.documents import make_document
from qa.loaders import load_corpus

from .conftest import DEMO_CORPUS

# The chunker counts with the embedding model's tokenizer, which loads the model.
pytestmark = pytest.mark.slow

PARAGRAPH = "The delegation met in Ottawa on Aug. 25 to open the talks. " * 6
ADVERSARIAL = {
    "repeated paragraphs": "\n\n".join([PARAGRAPH] * 12),
    "unicode": ("Mélanie Joly a parlé à Montréal. Ça va très bien 🇨🇦🙂 ok. 北京和東京は遠い。 " * 40),
    "crlf": "Line one of text.\r\nLine two of text.\r\n\r\n" * 80,
    "very long token": "start " + "x" * 5000 + " end " + "y" * 3000,
    "no spaces at all": "abcdefghij" * 700,
    "whitespace runs": ("word   \t  " * 400) + "\n\n\n\n" + "tail",
    "one short line": "Just one line.",
}


@pytest.fixture(scope="module")
def chunker(embedder):
    return Chunker(embedder.tokenizer, chunk_tokens=64, overlap_tokens=16)


def _check(chunker, doc):
    chunks = chunker.split(doc)
    for chunk in chunks:
        assert doc.text[chunk.start:chunk.end] == chunk.text
        assert chunk.text == chunk.text.strip() and chunk.text
        assert chunker.count_tokens(chunk.text) <= chunker.chunk_tokens
    starts = [c.start for c in chunks]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    # Every non-space character of the document is in some chunk.
    covered = set()
    for c in chunks:
        covered.update(range(c.start, c.end))
    assert all(i in covered for i, ch in enumerate(doc.text) if not ch.isspace())
    return chunks


@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_offsets_are_exact_on_adversarial_text(chunker, name):
    doc = make_document("doc", ADVERSARIAL[name])
    chunks = _check(chunker, doc)
    assert chunks


def test_crlf_offsets_on_raw_text(chunker):
    """The chunker itself keeps CRLF text exact (loaders normalise line endings first)."""
    from qa.documents import Document

    doc = Document(id="raw", title="raw", text=ADVERSARIAL["crlf"])
    _check(chunker, doc)


def test_repeated_text_gets_distinct_offsets(chunker):
    doc = make_document("doc", "\n\n".join([PARAGRAPH] * 12))
    chunks = _check(chunker, doc)
    same_text = [c for c in chunks if c.text == chunks[1].text]
    assert len(same_text) > 1
    assert len({c.start for c in same_text}) == len(same_text)


def test_chunks_overlap_at_sentence_boundaries(chunker):
    text = " ".join(f"Sentence number {i} says something about topic {i}." for i in range(60))
    chunks = _check(chunker, make_document("doc", text))
    assert len(chunks) > 3
    for before, after in zip(chunks, chunks[1:]):
        assert after.start < before.end  # overlap
        assert after.text.startswith("Sentence number")


def test_an_overlap_never_starts_after_an_abbreviation(chunker):
    # the same sentence rule as citations: "Dr." and "Aug." do not end a sentence
    text = " ".join(f"Dr. Lee met Gen. Ford on Aug. {i % 28 + 1}." for i in range(80))
    chunks = _check(chunker, make_document("doc", text))
    assert len(chunks) > 3
    for chunk in chunks[1:]:
        assert chunk.text.startswith("Dr. Lee met"), chunk.text[:30]


def test_empty_and_whitespace_documents_have_no_chunks(chunker):
    from qa.documents import Document

    assert chunker.split(Document(id="e", title="e", text="")) == []
    assert chunker.split(Document(id="w", title="w", text=" \n\t \n ")) == []


def test_demo_corpus_chunks_fit_the_model(embedder):
    chunker = Chunker(embedder.tokenizer, chunk_tokens=embedder.max_tokens, overlap_tokens=32)
    for doc in load_corpus(DEMO_CORPUS).documents:
        _check(chunker, doc)


def test_overlap_must_be_smaller_than_half_a_chunk(embedder):
    with pytest.raises(ValueError):
        Chunker(embedder.tokenizer, chunk_tokens=64, overlap_tokens=40)
