"""Load and soak benchmarks: the question mix, the memory and write checks, and a short real soak."""

import json

import pytest

from qa.bench.load import SQUAD_ORIGIN, mix_counts, question_mix
from qa.bench.soak import Ledger, SoakConfig, memory_summary, run_soak, soak_text, verify
from qa.errors import InvalidInput

from .conftest import DEMO_CORPUS

DEMO_QUESTIONS = DEMO_CORPUS / "questions.jsonl"


def _squad_file(path, n):
    qas = [{"id": f"q{i}", "question": f"Question number {i}?", "answers": [{"text": "x", "answer_start": 0}]}
           for i in range(n)]
    path.write_text(json.dumps({"version": "1.1", "data": [
        {"title": "Article", "paragraphs": [{"context": "x marks the spot.", "qas": qas}]}]}))
    return path


def test_question_mix_adds_a_bounded_seeded_squad_sample(tmp_path):
    squad = _squad_file(tmp_path / "dev.json", 30)
    demo_count = len(question_mix([DEMO_QUESTIONS]))
    mix = question_mix([DEMO_QUESTIONS], squad, squad_sample=10, seed=3)
    assert mix_counts(mix) == {"questions.jsonl": demo_count, SQUAD_ORIGIN: 10}
    assert mix == question_mix([DEMO_QUESTIONS], squad, squad_sample=10, seed=3)
    assert {a.question for a in mix if a.origin == SQUAD_ORIGIN} != {
        a.question for a in question_mix([], squad, squad_sample=10, seed=4)}
    # asking for more than the file holds takes all of it
    assert mix_counts(question_mix([], squad, squad_sample=100)) == {SQUAD_ORIGIN: 30}


def test_question_mix_refuses_a_missing_squad_file_and_an_empty_mix(tmp_path):
    with pytest.raises(InvalidInput, match="no SQuAD file"):
        question_mix([DEMO_QUESTIONS], tmp_path / "missing.json", squad_sample=5)
    with pytest.raises(InvalidInput, match="no questions"):
        question_mix([], None, squad_sample=5)


def test_memory_summary_compares_the_first_and_last_quarter():
    trace = [(float(t), 100.0 + (10.0 if t >= 6 else 0.0)) for t in range(9)]  # 0..8 s, a 10 MB step at 6 s
    summary = memory_summary(trace, bound_mb=5)
    assert (summary["start_mb"], summary["end_mb"], summary["max_mb"]) == (100.0, 110.0, 110.0)
    assert summary["first_quarter_mean_mb"] == 100.0  # samples at 0, 1, 2 s
    assert summary["last_quarter_mean_mb"] == 110.0   # samples at 6, 7, 8 s
    assert summary["growth_mb"] == 10.0 and summary["within_bound"] is False
    assert memory_summary(trace, bound_mb=10)["within_bound"] is True


class _FakeServer:
    """Answers GET /api/documents/{id} and /api/ready from a dict, like the real routes."""

    def __init__(self, documents):
        self.documents = documents

    def call(self, method, path, body=None):
        assert method == "GET"
        if path == "/api/ready":
            return 200, {"status": "ready", "documents": len(self.documents)}
        doc_id = path.rsplit("/", 1)[1]
        if doc_id in self.documents:
            return 200, {"id": doc_id, "text": self.documents[doc_id]}
        return 404, {"error": {"code": "not_found", "message": doc_id}}


def test_verify_finds_lost_stale_and_resurrected_writes():
    ledger = Ledger()
    ledger.acknowledged("kept", soak_text("kept", 2))
    ledger.acknowledged("gone", None)
    ledger.acknowledged("stale", soak_text("stale", 3))
    ledger.acknowledged("lost", soak_text("lost", 1))
    ledger.acknowledged("back", None)
    server = _FakeServer({"base": "from the corpus", "kept": soak_text("kept", 2),
                          "stale": soak_text("stale", 2), "back": soak_text("back", 1)})
    result = verify(server, ledger, baseline_documents=1)
    assert (result["present"], result["deleted"], result["checked"]) == (3, 2, 5)
    assert not result["ok"]
    assert result["documents"] == result["expected_documents"] == 4  # the count alone would not notice
    assert sorted(line.split(":")[0] for line in result["lost"]) == ["back", "lost", "stale"]
    all_there = _FakeServer({"base": "x", "kept": soak_text("kept", 2), "stale": soak_text("stale", 3),
                             "lost": soak_text("lost", 1)})
    assert verify(all_there, ledger, baseline_documents=1)["ok"]


def test_verify_counts_an_uncertain_write_either_way():
    ledger = Ledger()
    ledger.acknowledged("a", soak_text("a", 1))
    ledger.failed("b")  # a write that errored: it may or may not have landed
    for documents in ({"a": soak_text("a", 1)}, {"a": soak_text("a", 1), "b": "whatever"}):
        result = verify(_FakeServer(documents), ledger, baseline_documents=0)
        assert result["ok"] and result["uncertain"] == 1


@pytest.mark.slow
def test_short_soak_against_a_real_server(demo_index, tmp_path, capsys):
    out = tmp_path / "soak.json"
    config = SoakConfig(clients=3, duration_s=5, warm_up_s=1, write_fraction=0.4, max_growth_mb=1000,
                        progress_every_s=2)
    report = run_soak(demo_index.index_dir, DEMO_CORPUS, question_mix([DEMO_QUESTIONS]), out, config)

    assert json.loads(out.read_text()) == report
    assert report["passed"], report["failures"]
    assert report["errors"] == 0 and report["error_messages"] == []
    kinds = report["kinds"]
    assert kinds["ask"]["ok"] > 0 and kinds["add"]["ok"] > 0
    assert report["requests"] == sum(k["ok"] + k["errors"] for k in kinds.values())
    assert kinds["ask"]["p50_ms"] > 0 and kinds["ask"]["p99_ms"] >= kinds["ask"]["p50_ms"]
    memory = report["memory"]
    assert memory["samples"] >= 3 and 0 < memory["start_mb"] <= memory["max_mb"]
    for stage in ("live", "after_restart"):
        checked = report["verification"][stage]
        assert checked["ok"] and checked["lost"] == []
        assert checked["checked"] >= kinds["add"]["ok"]  # every added id, plus the warm-up's
        assert checked["documents"] == report["baseline_documents"] + checked["present"]
    printed = capsys.readouterr().out
    assert "writes verified (after restart)" in printed and "passed" in printed
