"""BM25 rebuilt from saved words equals BM25 built from scratch, and only new text is tokenized."""

import logging
from dataclasses import replace
from pathlib import Path

import bm25s
import numpy as np
import pytest

import qa.lexical as lexical
from qa.lexical import LexicalIndex, TokenTable

DEMO_CORPUS = Path(__file__).parent.parent / "corpus"
QUERIES = ["grain trucks reached Kyiv", "the summit in Vilnius", "ottawa talks", "nothing matches zebra"]


def _scores(index: LexicalIndex) -> list[np.ndarray]:
    return [index.scores(q) for q in QUERIES]


@pytest.fixture
def tokenized(monkeypatch):
    """Every text handed to the tokenizer, in order."""
    seen: list[str] = []
    words = lexical.stemmed_words

    def counting(texts, stemmer):
        seen.extend(texts)
        return words(texts, stemmer)

    monkeypatch.setattr(lexical, "stemmed_words", counting)
    return seen


def test_reused_words_give_the_same_bm25_as_a_fresh_build(tokenized):
    texts = {1: "Alpha talks opened in Ottawa.", 2: "Beta aid reached Kyiv by trucks.",
             3: "Gamma summit met in Vilnius."}
    first = LexicalIndex.build(list(texts.values()), list(texts))
    # Commit two: item 2 deleted, item 3 replaced by new text under the same id, item 4 added.
    after = {1: texts[1], 3: "Grain trucks reached Kyiv on Monday.", 4: "Delta summit ended in Vilnius."}
    tokenized.clear()
    incremental = LexicalIndex.build(list(after.values()), list(after), first.tokens, fresh={3, 4})
    assert tokenized == [after[3], after[4]]  # item 1's words were reused
    fresh = LexicalIndex.build(list(after.values()), list(after))
    for mine, expected in zip(_scores(incremental), _scores(fresh)):
        np.testing.assert_array_equal(mine, expected)
    assert set(incremental.tokens.vocab) == set(fresh.tokens.vocab)  # deleted words are gone


def test_an_id_not_named_fresh_keeps_its_saved_words():
    first = LexicalIndex.build(["Alpha talks opened in Ottawa."], [7])
    stale = LexicalIndex.build(["Completely different words"], [7], first.tokens)
    assert stale.scores("ottawa")[0] > 0 and stale.scores("different")[0] == 0


def test_items_of_stop_words_only_build_and_score_nothing():
    index = LexicalIndex.build(["To be or not to be.", "It is."], [1, 2])
    assert index.scores("to be")[0] == 0 and index.scores("zebra").tolist() == [0, 0]


def test_saved_words_round_trip_and_a_damaged_file_is_ignored(tmp_path):
    index = LexicalIndex.build(["Alpha talks opened in Ottawa.", "Beta aid reached Kyiv."], [1, 2])
    index.save(tmp_path)
    table = TokenTable.load(tmp_path)
    assert table is not None
    np.testing.assert_array_equal(table.ids, [1, 2])
    for name in ("ids", "offsets", "word_ids", "vocab"):
        np.testing.assert_array_equal(getattr(table, name), getattr(index.tokens, name))
    replace(table, offsets=table.offsets[:-1]).save(tmp_path)
    assert TokenTable.load(tmp_path) is None
    (tmp_path / "tokens.npz").write_bytes(b"not a zip file")
    assert TokenTable.load(tmp_path) is None
    (tmp_path / "tokens.npz").unlink()
    assert TokenTable.load(tmp_path) is None


def test_the_matrix_built_over_arrays_is_bm25s_own(tmp_path):
    """The commit builds BM25's matrix itself (qa/lexical.py); bm25s's loop must agree with it."""
    texts = [path.read_text(encoding="utf-8") for path in sorted(DEMO_CORPUS.glob("*.txt"))]
    texts += ["To be or not to be.", "Kyiv, Kyiv and Kyiv again."]  # an item without words; repeats
    index = LexicalIndex.build(texts, list(range(100, 100 + len(texts))))
    table = index.tokens
    items = [piece.tolist() for piece in np.split(table.word_ids, table.offsets[1:-1])]
    reference = bm25s.BM25(k1=0.9, b=0.4)
    reference.index((items, table.vocabulary()), show_progress=False)

    mine = index._bm25.scores
    np.testing.assert_array_equal(mine["indptr"], reference.scores["indptr"])
    np.testing.assert_array_equal(mine["indices"], reference.scores["indices"])
    np.testing.assert_allclose(mine["data"], reference.scores["data"], rtol=1e-6)
    assert mine["num_docs"] == reference.scores["num_docs"] == len(texts)
    assert index._bm25.vocab_dict == reference.vocab_dict
    index.save(tmp_path)  # and bm25s reads it back as its own
    again = LexicalIndex.load(tmp_path)
    for query in QUERIES + ["Kyiv"]:
        np.testing.assert_allclose(again.scores(query), reference.get_scores(index.tokenize_query(query) or [""]),
                                   rtol=1e-6)


def test_building_logs_nothing_below_the_applications_level(caplog):
    """bm25s sets its own logger to DEBUG on import; an application's handler would print its debug lines."""
    LexicalIndex.build(["Alpha talks in Vilnius.", "Beta aid."], [0, 1])
    assert not [r for r in caplog.records if r.name.startswith("bm25s") and r.levelno < logging.WARNING]
