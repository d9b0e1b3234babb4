"""Segments: a commit writes only what it adds, and merged segments answer as a rebuild does."""

import math
import random

import numpy as np
import pytest

from qa.bench.scale import DIMENSION, SyntheticCorpus
from qa.store import Filters, IndexConfig, IndexReader, IndexWriter, segments

CONFIG = IndexConfig("stand-in", DIMENSION, 200, 32)
SIGNALS = ("dense", "sentence", "lexical")


def _commit(index_dir, upserts=(), deletes=(), *, rebuild=False):
    with IndexWriter(index_dir, CONFIG, rebuild=rebuild) as writer:
        writer.delete(list(deletes))
        for item in upserts:
            writer.upsert(item)
        return writer.commit()


def _files(index_dir):
    """(inode, size, mtime) of every file the index holds outside its generation folders."""
    return {str(p.relative_to(index_dir)): (p.stat().st_ino, p.stat().st_size, p.stat().st_mtime_ns)
            for p in [index_dir / "store.sqlite", *(index_dir / "segments").rglob("*")] if p.is_file()}


def _by_chunk(reader, found):
    """The candidates' scores keyed by (document, chunk ordinal): chunk ids differ index to index."""
    chunks = {c.id: c for c in reader.chunks(found.chunk_ids)}
    ordinals = dict(reader._query("SELECT id, ordinal FROM chunks"))
    return {(chunks[i].doc_id, ordinals[i]): tuple(round(float(found.scores[s][k]), 4) for s in SIGNALS)
            for k, i in enumerate(found.chunk_ids)}


def test_the_merge_policy_doubles_segments():
    assert segments.to_merge([100, 1]) == 1
    assert segments.to_merge([1, 1]) == 2
    assert segments.to_merge([8, 2, 1, 1]) == 3  # 1+1, then 2 <= 2, and 8 > 4
    assert segments.to_merge([4, 2, 1, 1]) == 4


def test_a_one_document_commit_rewrites_nothing_already_written(tmp_path):
    corpus = SyntheticCorpus()
    _commit(tmp_path, [corpus.document(n) for n in range(40)])
    before = _files(tmp_path)
    manifest = _commit(tmp_path, [corpus.document(40)])
    after = _files(tmp_path)
    (old, old_rows), (new, new_rows) = manifest.segments
    assert new_rows == len(corpus.document(40).chunks) and old_rows == manifest.chunks - new_rows
    # The old segment's files are untouched and only the new segment is new; the database gained
    # rows in place instead of being copied.
    assert {k: v for k, v in after.items() if not k.startswith(f"segments/{new}") and k != "store.sqlite"} == \
        {k: v for k, v in before.items() if k != "store.sqlite"}
    assert after["store.sqlite"][0] == before["store.sqlite"][0]
    reader = IndexReader.open(tmp_path)
    reader.verify()
    assert reader.manifest.documents == 41 and len(reader.document_hashes()) == 41
    reader.close()


def test_many_small_commits_merge_and_answer_as_one_rebuild(tmp_path):
    corpus, rng = SyntheticCorpus(), random.Random(7)
    live = {f"doc-{n:07d}": corpus.document(n) for n in range(30)}
    _commit(tmp_path / "incremental", list(live.values()))
    number, commits = 30, 40
    for _ in range(commits):
        replaced = rng.choice(sorted(live))
        gone = rng.choice(sorted(set(live) - {replaced}))
        live[replaced] = corpus.document(number, doc_id=replaced)  # new text and vectors, same id
        live[f"doc-{number + 1:07d}"] = corpus.document(number + 1)
        del live[gone]
        _commit(tmp_path / "incremental", [live[replaced], live[f"doc-{number + 1:07d}"]], [gone])
        number += 2
    _commit(tmp_path / "rebuilt", list(live.values()))
    incremental, rebuilt = IndexReader.open(tmp_path / "incremental"), IndexReader.open(tmp_path / "rebuilt")
    incremental.verify()
    # One segment written per commit, most of them merged away since.
    assert incremental.manifest.next_segment - 1 == commits + 1
    assert len(incremental.manifest.segments) <= 2 + math.log2(commits)
    assert incremental.document_hashes() == rebuilt.document_hashes()
    for n in rng.sample(range(number), 12):
        question = corpus.question(n)
        for filters in (Filters(), Filters(doc_ids=tuple(sorted(live)[:10]))):
            found = [_by_chunk(r, r.candidates(question.text, question.vector, 10, filters, SIGNALS))
                     for r in (incremental, rebuilt)]
            assert found[0] == found[1]
    incremental.close()
    rebuilt.close()


def test_a_reader_keeps_its_generation_while_later_ones_are_committed(tmp_path):
    corpus = SyntheticCorpus()
    _commit(tmp_path, [corpus.document(n) for n in range(5)])
    first = IndexReader.open(tmp_path)
    old_text = first.document("doc-0000001").text
    old_chunks = first.chunk_ids_matching(doc_ids=["doc-0000001"])
    _commit(tmp_path, [corpus.document(99, doc_id="doc-0000001")], ["doc-0000002"])
    second = IndexReader.open(tmp_path)
    assert second.document("doc-0000001").text != old_text
    assert "doc-0000002" not in second.document_hashes()
    # The first reader still sees its own generation, rows and vectors alike.
    assert first.document("doc-0000001").text == old_text and "doc-0000002" in first.document_hashes()
    np.testing.assert_array_equal(first.chunk_ids_matching(doc_ids=["doc-0000001"]), old_chunks)
    assert not set(second.chunk_ids_matching().tolist()) & set(old_chunks.tolist())  # ids are never reused
    first.verify()
    second.verify()
    first.close()
    second.close()


def test_a_rebuild_starts_one_segment_afresh_and_reuses_no_id(tmp_path):
    corpus = SyntheticCorpus()
    for n in range(4):
        _commit(tmp_path, [corpus.document(n)])
    first = IndexReader.open(tmp_path)
    manifest = _commit(tmp_path, [corpus.document(n) for n in (10, 11)], rebuild=True)
    assert len(manifest.segments) == 1 and manifest.documents == 2
    reader = IndexReader.open(tmp_path)
    reader.verify()
    assert sorted(reader.document_hashes()) == ["doc-0000010", "doc-0000011"]
    assert min(reader.chunk_ids_matching()) > max(first.chunk_ids_matching())
    first.close()
    reader.close()


@pytest.mark.parametrize("damage", ["missing", "truncated"])
def test_a_damaged_segment_is_a_corrupt_index(tmp_path, damage):
    from qa.errors import IndexCorrupt

    corpus = SyntheticCorpus()
    manifest = _commit(tmp_path, [corpus.document(n) for n in range(3)])
    words = tmp_path / "segments" / manifest.segments[0][0] / "words.npz"
    if damage == "missing":
        words.unlink()
    else:
        words.write_bytes(words.read_bytes()[:100])
    with pytest.raises(IndexCorrupt):
        IndexReader.open(tmp_path)


def test_the_next_reader_borrows_the_segments_it_shares_and_only_those(tmp_path):
    import shutil

    corpus = SyntheticCorpus()
    _commit(tmp_path / "index", [corpus.document(n) for n in range(6)])
    first = IndexReader.open(tmp_path / "index")
    _commit(tmp_path / "index", [corpus.document(6)])
    second = IndexReader.open(tmp_path / "index", previous=first)
    assert second.segments[0] is first.segments[0] and len(second.segments) == 2
    # The same folder made anew holds segments of the same names and other contents.
    shutil.rmtree(tmp_path / "index")
    _commit(tmp_path / "index", [corpus.document(n) for n in range(10, 16)])
    _commit(tmp_path / "index", [corpus.document(16)])
    third = IndexReader.open(tmp_path / "index", previous=second)
    assert [s.name for s in third.segments] == [s.name for s in second.segments]
    assert not {id(s) for s in third.segments} & {id(s) for s in second.segments}
    third.verify()
    assert sorted(third.document_hashes()) == [f"doc-{n:07d}" for n in range(10, 17)]
    for reader in (first, second, third):
        reader.close()


def test_the_sentences_of_chunks_are_those_a_scan_finds(tmp_path):
    corpus = SyntheticCorpus()
    for n in range(0, 12, 3):  # several segments, one document replaced
        _commit(tmp_path, [corpus.document(m) for m in range(n, n + 3)])
    _commit(tmp_path, [corpus.document(50, doc_id="doc-0000004")])
    reader = IndexReader.open(tmp_path)
    chunk_ids = reader.chunk_ids_matching()[::-2]  # any order, some left out
    sentence_ids, owner = reader.sentences_of(chunk_ids)
    for k, chunk_id in enumerate(chunk_ids):
        expected = reader.sentence_ids[reader.sentence_chunk_ids == chunk_id]
        assert sorted(sentence_ids[owner == k].tolist()) == sorted(expected.tolist()) and len(expected)
    vectors = reader.sentences.vectors(sentence_ids)
    for sentence_id, vector in zip(sentence_ids[:20], vectors[:20]):
        np.testing.assert_array_equal(vector, reader.sentences.vector(int(sentence_id)))
    reader.close()
