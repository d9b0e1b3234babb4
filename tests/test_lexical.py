"""BM25 scored over segments equals BM25 built over the live items at once, and bm25s's own."""

import logging
from pathlib import Path

import bm25s
import numpy as np
import pytest

from qa.bm25_query import BM25Query, top_rows
from qa.lexical import LexicalIndex, SegmentedBM25, english_stemmer, stemmed_words
from qa.word_counts import LEGACY_TOKENS_FILE, WordCounts

DEMO_CORPUS = Path(__file__).parent.parent / "corpus"
QUERIES = ["grain trucks reached Kyiv", "the summit in Vilnius", "ottawa talks", "nothing matches zebra",
           "Kyiv Kyiv trucks"]


def _words(texts: dict[int, str]) -> WordCounts:
    return WordCounts.from_words(list(texts), stemmed_words(list(texts.values()), english_stemmer()))


def _demo_texts() -> list[str]:
    texts = [path.read_text(encoding="utf-8") for path in sorted(DEMO_CORPUS.glob("*.txt"))]
    return texts + ["To be or not to be.", "Kyiv, Kyiv and Kyiv again."]  # an item without words; repeats


def _segmented(parts: list[dict[int, str]], live: set[int]) -> SegmentedBM25:
    counts = [_words(part) for part in parts]
    ids = np.array(sorted(live), dtype=np.int64)
    rows = [np.array([int(np.searchsorted(ids, i)) if i in live else -1 for i in c.ids]) for c in counts]
    return SegmentedBM25(counts, rows, ids)


def test_segments_with_deleted_rows_score_as_one_index_over_the_live_items():
    texts = dict(enumerate(_demo_texts(), start=1))
    numbers = list(texts)
    # Three segments, oldest first; some items deleted since their segment was written.
    parts = [{i: texts[i] for i in numbers[:6]}, {i: texts[i] for i in numbers[6:10]},
             {i: texts[i] for i in numbers[10:]}]
    live = set(numbers) - {2, 5, 7, numbers[-1]}
    segmented = _segmented(parts, live)
    whole = LexicalIndex.build([texts[i] for i in sorted(live)], sorted(live))
    np.testing.assert_array_equal(segmented.ids, whole.ids)
    for query in QUERIES:
        np.testing.assert_allclose(segmented.scores(query), whole.scores(query), rtol=1e-6)
    # The same items in other segments give the very same numbers: no score depends on the split.
    again = _segmented([{i: texts[i] for i in numbers[:3]}, {i: texts[i] for i in numbers[3:]}], live)
    for query in QUERIES:
        np.testing.assert_array_equal(segmented.scores(query), again.scores(query))
    mask = np.zeros(len(segmented.ids), dtype=np.float32)
    mask[:3] = 1
    assert not segmented.scores("Kyiv", mask)[3:].any()


def test_items_of_stop_words_only_build_and_score_nothing():
    index = LexicalIndex.build(["To be or not to be.", "It is."], [1, 2])
    assert index.scores("to be")[0] == 0 and index.scores("zebra").tolist() == [0, 0]
    segmented = _segmented([{1: "To be or not to be.", 2: "It is."}], {1, 2})
    assert segmented.scores("to be").tolist() == [0, 0] and segmented.scores("zebra").tolist() == [0, 0]


def test_merged_counts_are_those_of_the_kept_items_counted_afresh():
    texts = {1: "Alpha talks opened in Ottawa.", 2: "Beta aid reached Kyiv by trucks.",
             3: "Gamma summit met in Vilnius.", 4: "Grain trucks reached Kyiv on Monday."}
    first, second = _words({1: texts[1], 2: texts[2]}), _words({3: texts[3], 4: texts[4]})
    merged = WordCounts.merged([first, second], [np.array([True, False]), np.array([True, True])])
    fresh = _words({i: texts[i] for i in (1, 3, 4)})
    assert sorted(merged.vocab) == sorted(fresh.vocab)  # "beta" and "aid" went with item 2
    np.testing.assert_array_equal(merged.ids, fresh.ids)
    np.testing.assert_array_equal(merged.lengths, fresh.lengths)
    for word in fresh.vocab:
        m, f = merged.vocab.index(word), fresh.vocab.index(word)
        for name in ("rows", "counts"):
            np.testing.assert_array_equal(getattr(merged, name)[merged.starts[m]:merged.starts[m + 1]],
                                          getattr(fresh, name)[fresh.starts[f]:fresh.starts[f + 1]])


def test_counts_round_trip_and_a_damaged_file_is_an_error(tmp_path):
    counts = _words({1: "Alpha talks opened in Ottawa.", 2: "Beta aid reached Kyiv, Kyiv."})
    counts.save(tmp_path / "words.npz")
    again = WordCounts.load(tmp_path / "words.npz")
    assert again.vocab == counts.vocab
    for name in ("ids", "lengths", "starts", "rows", "counts"):
        np.testing.assert_array_equal(getattr(again, name), getattr(counts, name))
    data = dict(np.load(tmp_path / "words.npz"))
    data["rows"] = data["rows"][:-1]
    np.savez(tmp_path / "damaged.npz", **data)
    with pytest.raises(ValueError):
        WordCounts.load(tmp_path / "damaged.npz")


def test_the_words_an_older_index_saved_are_read_and_a_damaged_file_is_ignored(tmp_path):
    texts = {4: "Alpha talks opened in Ottawa.", 9: "Beta aid reached Kyiv, Kyiv."}
    words = stemmed_words(list(texts.values()), english_stemmer())
    vocab = sorted({w for item in words for w in item})
    np.savez(tmp_path / LEGACY_TOKENS_FILE, ids=np.array(list(texts)),
             offsets=np.cumsum([0] + [len(w) for w in words]),
             word_ids=np.array([vocab.index(w) for item in words for w in item]), vocab=np.array(vocab))
    legacy = WordCounts.load_legacy(tmp_path)
    fresh = _words(texts)
    np.testing.assert_array_equal(legacy.ids, fresh.ids)
    for query in QUERIES:
        np.testing.assert_array_equal(SegmentedBM25([legacy], [np.arange(2)], legacy.ids).scores(query),
                                      SegmentedBM25([fresh], [np.arange(2)], fresh.ids).scores(query))
    (tmp_path / LEGACY_TOKENS_FILE).write_bytes(b"not a zip file")
    assert WordCounts.load_legacy(tmp_path) is None
    (tmp_path / LEGACY_TOKENS_FILE).unlink()
    assert WordCounts.load_legacy(tmp_path) is None


def test_the_matrix_built_over_arrays_is_bm25s_own():
    """BM25's matrix is built over arrays (qa/lexical.py); bm25s's own loop must agree with it."""
    texts = _demo_texts()
    index = LexicalIndex.build(texts, list(range(100, 100 + len(texts))))
    reference = bm25s.BM25(k1=0.9, b=0.4)
    reference.index(bm25s.tokenize(texts, stopwords="en", stemmer=english_stemmer(), show_progress=False),
                    show_progress=False)
    for query in QUERIES + ["Kyiv"]:
        words = index.tokenize_query(query)
        expected = reference.get_scores([w for w in words if w in reference.vocab_dict] or [""])
        np.testing.assert_allclose(index.scores(query), expected, rtol=1e-6)
    assert index._bm25.scores["num_docs"] == reference.scores["num_docs"] == len(texts)


def test_building_logs_nothing_below_the_applications_level(caplog):
    """bm25s sets its own logger to DEBUG on import; an application's handler would print its debug lines."""
    LexicalIndex.build(["Alpha talks in Vilnius.", "Beta aid."], [0, 1])
    assert not [r for r in caplog.records if r.name.startswith("bm25s") and r.levelno < logging.WARNING]


def _zipf_texts(items: int, seed: int) -> list[str]:
    """Items of made-up words, a few very common and most rare, as words are in text."""
    rng = np.random.default_rng(seed)
    words = [f"zork{i}x" for i in range(400)]
    weights = 1 / np.arange(1, len(words) + 1) ** 1.1
    return [" ".join(rng.choice(words, size=rng.integers(3, 40), p=weights / weights.sum()))
            for _ in range(items)]


@pytest.mark.parametrize("ids_ascending", [True, False])
def test_the_best_rows_and_some_rows_scores_are_those_of_scoring_every_row(ids_ascending, monkeypatch):
    texts = _zipf_texts(3000, seed=5)
    ids = list(range(len(texts))) if ids_ascending else list(range(1000, 3000)) + list(range(1000))
    parts = [dict(zip(ids[:1200], texts[:1200])), dict(zip(ids[1200:2500], texts[1200:2500])),
             dict(zip(ids[2500:], texts[2500:]))]
    segmented = _segmented(parts, set(ids) - set(ids[::7]))
    rng = np.random.default_rng(1)
    mask = (rng.random(len(segmented.ids)) < 0.5).astype(np.float32)
    queries = ["zork0x zork3x zork250x", "zork1x zork390x zork390x", "zork0x zork1x zork2x", "zork399x",
               "zork5x zork120x zork333x zork7x", "nothing here"]
    for question in queries:
        query = segmented.query(question)
        for m in (None, mask):
            every = query.all(m)
            np.testing.assert_array_equal(every, segmented.scores(question, m))
            some = rng.integers(0, len(every), 200)
            np.testing.assert_array_equal(query.at(some, m), every[some])
            for n in (1, 10, 100):
                rows, scores = query.top(n, m)
                np.testing.assert_array_equal(rows, top_rows(every, n))
                np.testing.assert_array_equal(scores, every[rows])

    def scoring_every_row(*_):
        raise AssertionError("the best rows of a question with rare words need not score every row")

    monkeypatch.setattr(BM25Query, "all", scoring_every_row)
    rows, _ = segmented.query("zork0x zork1x zork300x zork310x").top(5)
    assert len(rows) == 5
