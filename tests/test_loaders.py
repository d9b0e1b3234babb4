import json
from datetime import date

from qa.loaders import load_corpus

from .conftest import DEMO_CORPUS


def _write(path, content):
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")


def test_demo_corpus_loads_cleanly():
    result = load_corpus(DEMO_CORPUS)
    assert result.skipped == []
    assert len(result.documents) >= 12
    ids = [d.id for d in result.documents]
    assert len(ids) == len(set(ids))
    suffixes = {i.rsplit(".", 1)[-1] for i in ids if "." in i}
    assert {"txt", "md", "html"} <= suffixes
    assert any("." not in i or not i.endswith((".txt", ".md", ".html")) for i in ids)  # jsonl ids
    assert all(d.published is not None and d.source for d in result.documents)


def test_txt_header_block_and_markdown_heading(tmp_path):
    _write(tmp_path / "a.txt", "Title: Talks open\nSource: Ledger\nPublished: 2023-08-28\n\nBody one.\r\n\r\nBody two.")
    _write(tmp_path / "b.md", "# A heading\n\nSome *markdown* text.")
    _write(tmp_path / "c.txt", "First line is the title\n\nThen the body.")
    docs = {d.id: d for d in load_corpus(tmp_path).documents}
    a = docs["a.txt"]
    assert (a.title, a.source, a.published) == ("Talks open", "Ledger", date(2023, 8, 28))
    assert a.text == "Body one.\n\nBody two."
    assert docs["b.md"].title == "A heading"
    assert docs["c.txt"].title == "First line is the title"
    assert docs["c.txt"].text.startswith("First line")


def test_html_keeps_article_text_only(tmp_path):
    _write(tmp_path / "page.html", """<!doctype html><html><head><title>Page title</title>
      <meta name="source" content="Wire"><meta name="published" content="2023-07-12">
      <meta name="author" content="Rosa Lind">
      <style>p { color: red }</style><script>var secret = "do not index";</script></head>
      <body><nav><a href="/">Home</a> Menu items</nav>
      <article><h1>Headline</h1><p>First &amp; foremost paragraph.</p><p>Second   paragraph.</p></article>
      <footer>Copyright footer</footer></body></html>""")
    doc = load_corpus(tmp_path).documents[0]
    assert doc.title == "Headline"
    assert doc.source == "Wire" and doc.published == date(2023, 7, 12)
    assert doc.metadata == {"author": "Rosa Lind"}
    assert doc.text == "Headline\n\nFirst & foremost paragraph.\n\nSecond paragraph."
    for noise in ("secret", "color", "Menu", "Copyright"):
        assert noise not in doc.text


def test_html_site_name_is_the_source_when_none_is_given(tmp_path):
    body = "<article><h1>Rates held</h1><p>" + "The bank held its rate at four percent. " * 8 + "</p></article>"
    _write(tmp_path / "og.html", f"""<html><head><meta property="og:site_name" content="Daily Wire">
      </head><body>{body}</body></html>""")
    _write(tmp_path / "both.html", f"""<html><head><meta property="og:site_name" content="Daily Wire">
      <meta name="source" content="Reprinted Ledger"></head><body>{body}</body></html>""")
    docs = {d.id: d for d in load_corpus(tmp_path).documents}
    assert docs["og.html"].source == "Daily Wire"
    assert docs["both.html"].source == "Reprinted Ledger"


def test_html_without_article_text_is_skipped_with_a_reason(tmp_path):
    _write(tmp_path / "empty.html", "<html><head><title>App shell</title></head>"
           "<body><div id='app'></div><script>render()</script></body></html>")
    result = load_corpus(tmp_path)
    assert result.documents == []
    assert [(s.path, s.reason) for s in result.skipped] == [("empty.html", "no article text found in the page")]


def test_bad_files_and_lines_are_skipped_with_reasons(tmp_path):
    lines = [
        json.dumps({"id": "ok", "title": "Fine", "text": "Good text.", "published": "2023-01-02",
                    "metadata": {"section": "world"}}),
        "{not json",
        json.dumps({"id": "no-text", "title": "x"}),
        json.dumps({"id": "empty", "text": "   "}),
        json.dumps({"id": "bad-date", "text": "t", "published": "yesterday"}),
        json.dumps({"id": ["list"], "text": "t"}),
        json.dumps([1, 2]),
        json.dumps({"id": "ok", "text": "duplicate id"}),
    ]
    _write(tmp_path / "docs.jsonl", "\n".join(lines))
    _write(tmp_path / "binary.txt", b"\x00\x01\x02binary")
    _write(tmp_path / "latin1.txt", "caf\xe9".encode("latin-1"))
    _write(tmp_path / "empty.md", "")
    _write(tmp_path / "blank.txt", "  \n\n ")
    _write(tmp_path / "good.txt", "A fine document.")
    result = load_corpus(tmp_path)
    assert sorted(d.id for d in result.documents) == ["good.txt", "ok"]
    reasons = {(s.path, s.line): s.reason for s in result.skipped}
    assert reasons[("docs.jsonl", 2)].startswith("malformed JSON")
    assert "text" in reasons[("docs.jsonl", 3)]
    assert reasons[("docs.jsonl", 4)] == "text is empty"
    assert "date" in reasons[("docs.jsonl", 5)]
    assert "id" in reasons[("docs.jsonl", 6)]
    assert "object" in reasons[("docs.jsonl", 7)]
    assert "duplicate" in reasons[("docs.jsonl", None)]
    assert reasons[("binary.txt", None)] == "binary file"
    assert "UTF-8" in reasons[("latin1.txt", None)]
    assert reasons[("empty.md", None)] == "empty file"
    assert reasons[("blank.txt", None)] == "text is empty"
    assert all(str(s).startswith("skipped ") for s in result.skipped)


def test_links_outside_the_root_are_not_read(tmp_path):
    outside = tmp_path / "outside.txt"
    _write(outside, "secret outside the corpus")
    root = tmp_path / "corpus"
    _write(root / "inside.txt", "inside text")
    (root / "escape.txt").symlink_to(outside)
    result = load_corpus(root)
    assert [d.id for d in result.documents] == ["inside.txt"]
    assert result.skipped[0].path == "escape.txt" and "outside" in result.skipped[0].reason


def test_qaignore_and_oversized_files(tmp_path):
    _write(tmp_path / ".qaignore", "# not documents\nnotes-*.txt\n")
    _write(tmp_path / "notes-1.txt", "ignored")
    _write(tmp_path / "big.txt", "x " * 600)
    _write(tmp_path / "small.txt", "kept")
    result = load_corpus(tmp_path, max_file_bytes=1000)
    assert [d.id for d in result.documents] == ["small.txt"]
    assert "limit" in result.skipped[0].reason


def test_content_hash_tracks_every_indexed_field(tmp_path):
    _write(tmp_path / "a.txt", "Title: One\n\nSame body.")
    first = load_corpus(tmp_path).documents[0].content_hash
    assert load_corpus(tmp_path).documents[0].content_hash == first
    _write(tmp_path / "a.txt", "Title: Two\n\nSame body.")
    assert load_corpus(tmp_path).documents[0].content_hash != first


def test_hostile_shapes_do_not_break_the_batch(tmp_path):
    _write(tmp_path / "nested.html", "<div>" * 20000 + "<p>Deep text.</p>" + "</div>" * 20000)
    _write(tmp_path / "oneline.txt", "word " * 400_000)
    _write(tmp_path / "types.jsonl", "\n".join([
        json.dumps({"id": 7, "text": "numeric id is fine"}),
        json.dumps({"id": "t", "text": "x", "title": ["not", "a", "string"]}),
        json.dumps({"id": "m", "text": "x", "metadata": "not an object"}),
        json.dumps({"id": "p", "text": "x", "published": 20230101}),
    ]))
    (tmp_path / "dangling.txt").symlink_to(tmp_path / "missing-target.txt")
    result = load_corpus(tmp_path)
    ids = sorted(d.id for d in result.documents)
    assert ids == ["7", "oneline.txt"]
    # Nesting this deep is past what the HTML parser builds a tree for: reported, not read.
    reasons = {s.path: s.reason for s in result.skipped if s.line is None}
    assert reasons["nested.html"] == "no article text found in the page"
    assert len(result.skipped) == 5
