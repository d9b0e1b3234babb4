import json
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest

from qa.errors import IndexMismatch, IndexMissing
from qa.indexing import index_corpus
from qa.store import FORMAT_VERSION, IndexReader, committed_generation, rows
from qa.word_counts import WordCounts

from .helpers import run_qa

pytestmark = pytest.mark.slow


def _write_corpus(root, docs):
    root.mkdir(parents=True, exist_ok=True)
    for name, body in docs.items():
        (root / name).write_text(f"Title: {name}\nSource: Test\nPublished: 2023-08-01\n\n{body}")


def test_incremental_runs(tmp_path, settings, embedder):
    corpus = tmp_path / "c"
    _write_corpus(corpus, {"a.txt": "Alpha talks opened in Ottawa.", "b.txt": "Beta aid reached Kyiv.",
                           "c.txt": "Gamma summit met in Vilnius."})
    first = index_corpus(corpus, settings, embedder)
    assert (first.added, first.updated, first.unchanged, first.removed) == (3, 0, 0, 0)
    second = index_corpus(corpus, settings, embedder)
    assert (second.added, second.unchanged, second.chunks_embedded) == (0, 3, 0)
    assert second.manifest is None  # nothing committed

    (corpus / "b.txt").write_text("Title: b.txt\nSource: Test\nPublished: 2023-08-01\n\nBeta aid changed.")
    (corpus / "c.txt").unlink()
    _write_corpus(corpus, {"d.txt": "Delta is new."})
    (corpus / "broken.txt").write_bytes(b"\xff\xfe\x00bad")
    third = index_corpus(corpus, settings, embedder)
    assert (third.added, third.updated, third.unchanged, third.removed) == (1, 1, 1, 1)
    assert [s.path for s in third.skipped] == ["broken.txt"]
    assert third.chunks_embedded == 2

    reader = IndexReader.open(settings.index_dir)
    reader.verify()
    assert sorted(reader.document_hashes()) == ["a.txt", "b.txt", "d.txt"]
    assert reader.document("b.txt").text == "Beta aid changed."
    reader.close()


def test_reader_sees_committed_state(tmp_path, settings, embedder):
    corpus = tmp_path / "c"
    _write_corpus(corpus, {"a.txt": "Alpha.", "b.txt": "Beta."})
    index_corpus(corpus, settings, embedder)
    reader = IndexReader.open(settings.index_dir)
    reader.verify()
    assert reader.manifest.documents == 2
    assert reader.document("a.txt").text == "Alpha."
    assert set(reader.document_hashes()) == {"a.txt", "b.txt"}
    total, listed = reader.list_documents(limit=1)
    assert total == 2 and len(listed) == 1
    headers = reader.documents(["a.txt", "b.txt", "absent"], with_text=False)
    assert set(headers) == {"a.txt", "b.txt"} and headers["a.txt"].text == ""
    assert headers["a.txt"].title == reader.document("a.txt").title
    reader.close()


def test_missing_and_mismatched_index(tmp_path, settings, embedder):
    with pytest.raises(IndexMissing):
        IndexReader.open(tmp_path / "nothing")
    corpus = tmp_path / "c"
    _write_corpus(corpus, {"a.txt": "Alpha."})
    index_corpus(corpus, settings, embedder)
    other = settings.model_copy(update={"chunk_tokens": 128})
    with pytest.raises(IndexMismatch, match="--rebuild"):
        index_corpus(corpus, other, embedder)
    rebuilt = index_corpus(corpus, other, embedder, rebuild=True)
    assert rebuilt.added == 1 and rebuilt.manifest.chunk_tokens == 128


def test_format_version_mismatch_says_rebuild(tmp_path, settings, embedder):
    corpus = tmp_path / "c"
    _write_corpus(corpus, {"a.txt": "Alpha."})
    report = index_corpus(corpus, settings, embedder)
    manifest_path = settings.index_dir / f"gen-{report.manifest.generation:06d}" / "manifest.json"
    data = json.loads(manifest_path.read_text())
    data["format_version"] = 999
    manifest_path.write_text(json.dumps(data))
    with pytest.raises(IndexMismatch, match="rebuild"):
        IndexReader.open(settings.index_dir)


def _as_format_4(index_dir: Path, *, with_words: bool = True) -> None:
    """Rewrite a one-segment index in format 4's layout: everything in the generation's folder.

    Format 4 kept a database, both FAISS files and each chunk's words (``bm25/tokens.npz``) per
    generation; format 3 had no saved words (``with_words=False``).
    """
    generation = index_dir / f"gen-{committed_generation(index_dir):06d}"
    manifest = json.loads((generation / "manifest.json").read_text())
    (name, _), = manifest["segments"]
    segment = index_dir / "segments" / name
    shutil.copy(segment / "chunks.faiss", generation / "vectors.faiss")
    shutil.copy(segment / "sentences.faiss", generation / "sentences.faiss")
    with closing(sqlite3.connect(generation / "store.sqlite")) as old:
        old.execute("ATTACH DATABASE ? AS tagged", (str(index_dir / "store.sqlite"),))
        for table, columns in rows.COLUMNS.items():
            old.execute(f"CREATE TABLE main.{table} AS SELECT {columns} FROM tagged.{table}")
        old.commit()
    if with_words:
        words = WordCounts.load(segment / "words.npz")
        items = [[] for _ in words.ids]
        for word in range(len(words.vocab)):
            for row, count in zip(words.rows[words.starts[word]:words.starts[word + 1]],
                                  words.counts[words.starts[word]:words.starts[word + 1]]):
                items[row] += [word] * int(count)
        (generation / "bm25").mkdir()
        np.savez(generation / "bm25" / "tokens.npz", ids=words.ids, offsets=np.cumsum([0] + [len(i) for i in items]),
                 word_ids=np.array([w for item in items for w in item]), vocab=np.array(words.vocab))
    shutil.rmtree(index_dir / "segments")
    for path in index_dir.glob("store.sqlite*"):
        path.unlink()
    for field in ("segments", "next_chunk_id", "next_sentence_id", "next_segment"):
        del manifest[field]
    manifest["format_version"] = 4 if with_words else 3
    (generation / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("older", [4, 3])
def test_an_index_of_an_older_format_is_read_and_converted_by_the_next_commit(older, tmp_path, settings, embedder):
    corpus = tmp_path / "c"
    _write_corpus(corpus, {"a.txt": "Alpha talks opened in Ottawa.", "b.txt": "Beta aid reached Kyiv."})
    index_corpus(corpus, settings, embedder)
    before = IndexReader.open(settings.index_dir)
    expected = {q: before.lexical.scores(q) for q in ("Ottawa", "Kyiv aid")}
    before.close()
    _as_format_4(settings.index_dir, with_words=older == 4)
    reader = IndexReader.open(settings.index_dir)
    reader.verify()
    assert reader.manifest.format_version == older
    for query, scores in expected.items():
        np.testing.assert_array_equal(reader.lexical.scores(query), scores)
    reader.close()

    _write_corpus(corpus, {"c.txt": "Gamma summit met in Vilnius."})
    upgraded = index_corpus(corpus, settings, embedder)
    assert upgraded.manifest.format_version == FORMAT_VERSION == 5
    reader = IndexReader.open(settings.index_dir)
    reader.verify()
    assert sorted(reader.document_hashes()) == ["a.txt", "b.txt", "c.txt"]
    assert reader.lexical.scores("Vilnius").max() > 0 and reader.lexical.scores("Ottawa").max() > 0
    assert len(reader.manifest.segments) == 2  # the older files as one segment, and the new document
    reader.close()


def test_cli_index_and_stats(tmp_path):
    corpus = tmp_path / "c"
    _write_corpus(corpus, {"a.txt": "Alpha talks.", "b.txt": "Beta aid."})
    index = tmp_path / "idx"
    first = run_qa("index", corpus, "--index", index, "--quiet")
    assert first.exit_code == 0, first.output
    assert "2 added, 0 updated, 0 unchanged, 0 removed, 0 skipped" in first.stdout
    again = run_qa("index", corpus, "--index", index)
    assert "0 added, 0 updated, 2 unchanged" in again.stdout
    stats = run_qa("stats", "--index", index, "--json", "--verify")
    assert stats.exit_code == 0, stats.output
    data = json.loads(stats.stdout)
    assert data["documents"] == 2 and data["chunks"] == 2 and data["size_on_disk_bytes"] > 0
    assert data["sentences"] == 2 and data["sentence_vectors"] is True
    missing = run_qa("stats", "--index", tmp_path / "none")
    assert missing.exit_code == 2 and missing.stderr.startswith("Error: no index")


def _scores_by_document(reader: IndexReader, query: str) -> dict[str, float]:
    chunks = reader.chunks(reader.lexical.ids.tolist())
    return {c.doc_id: float(score) for c, score in zip(chunks, reader.lexical.scores(query), strict=True)}


def test_a_commit_tokenizes_only_what_it_writes(tmp_path, settings, embedder, monkeypatch):
    import qa.lexical as lexical

    corpus = tmp_path / "c"
    _write_corpus(corpus, {"a.txt": "Alpha talks opened in Ottawa.", "b.txt": "Beta aid reached Kyiv.",
                           "c.txt": "Gamma summit met in Vilnius."})
    index_corpus(corpus, settings, embedder)
    (corpus / "c.txt").unlink()
    _write_corpus(corpus, {"d.txt": "Delta grain trucks crossed into Kyiv."})
    tokenized: list[str] = []
    words = lexical.stemmed_words
    monkeypatch.setattr(lexical, "stemmed_words",
                        lambda texts, stemmer: tokenized.extend(texts) or words(texts, stemmer))
    index_corpus(corpus, settings, embedder)
    assert tokenized and all("Delta" in text for text in tokenized)

    incremental = IndexReader.open(settings.index_dir)
    incremental.verify()
    rebuilt_settings = settings.model_copy(update={"index_dir": tmp_path / "rebuilt"})
    index_corpus(corpus, rebuilt_settings, embedder)
    rebuilt = IndexReader.open(rebuilt_settings.index_dir)
    for query in ["Kyiv trucks", "Gamma Vilnius", "Ottawa talks", "grain"]:
        assert _scores_by_document(incremental, query) == _scores_by_document(rebuilt, query)
    assert incremental.lexical.scores("Gamma Vilnius").max() == 0
    incremental.close()
    rebuilt.close()
