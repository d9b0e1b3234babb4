"""No QA_* variable from the shell reaches a test or a session fixture, and none leaks between tests."""

from pathlib import Path

INNER_TESTS = '''
import os

import pytest


def qa_variables():
    return sorted(name for name in os.environ if name.startswith("QA_"))


@pytest.fixture(scope="session")
def seen_by_the_session():
    return qa_variables()


def test_a_session_fixture_sees_none(seen_by_the_session):
    assert seen_by_the_session == []


def test_a_test_sees_none_and_sets_one_by_hand():
    assert qa_variables() == []
    os.environ["QA_TOP_K"] = "7"  # not through monkeypatch, so nothing would undo it


def test_the_next_test_sees_none():
    assert qa_variables() == []
'''


def test_qa_variables_from_the_shell_are_hidden_from_every_test(pytester, monkeypatch):
    pytester.makeconftest(Path(__file__).with_name("conftest.py").read_text(encoding="utf-8"))
    pytester.makepyfile(INNER_TESTS)
    monkeypatch.setenv("QA_TOP_K", "3")
    monkeypatch.setenv("QA_INDEX_DIR", "/nowhere")
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")  # the inner run needs no installed plugin
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=3)
