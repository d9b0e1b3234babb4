import pytest

from qa.eval.metrics import best_over_golds, exact_match, f1, normalize_answer


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("The  Quick, brown fox!", "quick brown fox"),
        ("An apple a day", "apple day"),
        ("theater anthem", "theater anthem"),  # articles only as whole words
        ("U.S. (1990s)", "us 1990s"),
        ("mid-1990s", "mid1990s"),  # punctuation is deleted, not replaced by a space
        ("  Denver \n\t Broncos ", "denver broncos"),
        ("", ""),
        ("the", ""),
    ],
)
def test_normalize_answer(raw, expected):
    assert normalize_answer(raw) == expected


def test_exact_match():
    assert exact_match("the Denver Broncos", "Denver Broncos.") == 1.0
    assert exact_match("Denver", "Denver Broncos") == 0.0
    assert exact_match("", "") == 1.0
    assert exact_match("the", "") == 1.0


def test_f1_partial_overlap():
    # pred {denver, broncos, won}, gold {denver, broncos}: P=2/3, R=1 -> F1=0.8
    assert f1("Denver Broncos won", "the Denver Broncos") == pytest.approx(0.8)
    # counts are clipped: overlap of [x, y, y] and [y, y, z] is 2 -> P=R=2/3
    assert f1("x y y", "y y z") == pytest.approx(2 / 3)
    assert f1("Carolina Panthers", "Denver Broncos") == 0.0


def test_f1_empty_strings():
    # the v1.1 script gives 0 whenever nothing overlaps, also for two empty answers
    assert f1("", "") == 0.0
    assert f1("", "Denver") == 0.0
    assert f1("Denver", "") == 0.0
    assert f1("the", "a") == 0.0


def test_best_over_golds():
    assert best_over_golds(f1, "Denver Broncos", ["Broncos", "Denver Broncos"]) == 1.0
    assert best_over_golds(f1, "Denver Broncos", ["Broncos", "Carolina"]) == pytest.approx(2 / 3)
    assert best_over_golds(exact_match, "broncos", ["Denver Broncos", "The Broncos"]) == 1.0
    assert best_over_golds(f1, "anything", []) == 0.0
