import json

import pytest

from qa.calibration import calibrated_errors
from qa.eval.metrics import ndcg_at_k, percentile, recall_at_k, reciprocal_rank
from qa.eval.runner import RunConfig, choose_questions, load_question_set, summarize

from .conftest import DEMO_CORPUS
from .helpers import run_qa


def test_ranking_metrics_on_hand_computed_cases():
    ranked = ["a", "b", "c", "d"]
    assert recall_at_k(ranked, ["c", "z"], 2) == 0.0
    assert recall_at_k(ranked, ["c", "z"], 3) == 0.5
    assert reciprocal_rank(ranked, ["c"]) == pytest.approx(1 / 3)
    assert reciprocal_rank(ranked, ["z"]) == 0.0
    # one relevant doc at rank 2: DCG = 1/log2(3), ideal = 1
    assert ndcg_at_k(ranked, ["b"]) == pytest.approx(0.6309, abs=1e-4)
    # relevant at ranks 1 and 3 of two relevant: (1 + 1/2) / (1 + 1/log2(3))
    assert ndcg_at_k(ranked, ["a", "c"]) == pytest.approx(1.5 / (1 + 0.63093), abs=1e-4)
    assert percentile([10, 20, 30, 40], 50) == 25
    assert percentile([5], 95) == 5


def test_summary_of_hand_made_predictions():
    rows = [
        {"gold": ["Paris"], "gold_doc_ids": ["d1"], "retrieved": ["d1", "d2"], "prediction": "Paris",
         "confidence": 0.9, "abstained": False, "em": 1.0, "f1": 1.0, "right": True,
         "timings_ms": {"total": 10.0}},
        {"gold": ["Rome"], "gold_doc_ids": ["d3"], "retrieved": ["d2", "d3"], "prediction": "Milan",
         "confidence": 0.2, "abstained": True, "em": 0.0, "f1": 0.0, "right": False,
         "timings_ms": {"total": 30.0}},
        {"gold": [], "gold_doc_ids": [], "retrieved": ["d2"], "prediction": "x", "confidence": 0.1,
         "abstained": True, "timings_ms": {"total": 20.0}},
    ]
    metrics, curves = summarize(rows, RunConfig("t"))
    assert metrics["recall@1"] == 0.5 and metrics["recall@5"] == 1.0
    assert metrics["mrr@10"] == 0.75
    assert metrics["em"] == 50.0 and metrics["f1"] == 50.0
    assert metrics["abstention_recall"] == 1.0 and metrics["abstention_precision"] == 0.5
    assert metrics["total_p50_ms"] == 20.0
    assert curves["coverage"][0] == [0.1, 1.0]  # the most confident answer is right


def test_error_a_calibrated_reader_shows_by_chance():
    assert calibrated_errors([0.0, 1.0, 1.0]).max() == 0.0  # certain answers cannot miss
    # four answers at 0.5: |0.5 - k/4| for k right of 4, k binomial, averages 3/16
    assert calibrated_errors([0.5] * 4).mean() == pytest.approx(3 / 16, abs=0.015)
    assert calibrated_errors([0.7] * 10_000).mean() < 0.01  # it shrinks with more questions
    assert (calibrated_errors([0.3, 0.8], seed=1) == calibrated_errors([0.3, 0.8], seed=1)).all()


def _answered(confidence: float, right: bool) -> dict:
    return {"gold": ["x"], "gold_doc_ids": ["d"], "prediction": "x" if right else "y", "confidence": confidence,
            "abstained": False, "em": float(right), "f1": float(right), "right": right}


def test_summary_says_whether_the_calibration_error_is_more_than_chance():
    sure_and_wrong, _ = summarize([_answered(0.9, False)] * 40, RunConfig("t"))
    assert sure_and_wrong["calibration_error"] == pytest.approx(0.9)
    assert sure_and_wrong["calibration_p_value"] == 0.0
    honest, _ = summarize([_answered(0.75, i % 4 != 0) for i in range(40)], RunConfig("t"))
    assert honest["calibration_error"] == 0.0 and honest["calibration_p_value"] == 1.0
    assert 0.02 < honest["calibration_error_by_chance"] < 0.1  # about sqrt(2/pi) * sqrt(0.75 * 0.25 / 40)


def test_every_format_is_parsed(tmp_path):
    squad = {"version": "1.1", "data": [{"title": "Some_Article", "paragraphs": [
        {"context": "Paris is the capital of France.", "qas": [
            {"id": "q1", "question": "What is the capital of France?",
             "answers": [{"text": "Paris", "answer_start": 0}, {"text": "Paris", "answer_start": 0}]}]}]}]}
    (tmp_path / "squad.json").write_text(json.dumps(squad))
    qset = load_question_set(tmp_path / "squad.json", "all")
    assert qset.questions[0].answers == ("Paris",)
    assert qset.questions[0].doc_ids == ("Some_Article/p000",)
    assert qset.documents[0].title == "Some Article"

    beir = tmp_path / "beir"
    (beir / "qrels").mkdir(parents=True)
    (beir / "corpus.jsonl").write_text(json.dumps({"_id": "10", "title": "T", "text": "Body."}) + "\n")
    (beir / "queries.jsonl").write_text(json.dumps({"_id": "q", "text": "query?"}) + "\n"
                                        + json.dumps({"_id": "unjudged", "text": "other"}) + "\n")
    (beir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq\t10\t1\n")
    qset = load_question_set(beir, "test")
    assert [(q.id, q.doc_ids) for q in qset.questions] == [("q", ("10",))]
    assert qset.corpus_name == "beir" and qset.documents[0].id == "10"

    demo = load_question_set(DEMO_CORPUS / "questions.jsonl")
    assert not demo.documents and any(not q.answers for q in demo.questions)
    sampled = choose_questions(demo.questions, None, 5, seed=3)
    assert sampled == choose_questions(demo.questions, None, 5, seed=3) and len(sampled) == 5


@pytest.mark.slow
def test_end_to_end_evaluation_writes_the_report(demo_index, tmp_path):
    out = tmp_path / "eval"
    run = run_qa("eval", DEMO_CORPUS / "questions.jsonl", "--index", demo_index.index_dir,
                 "--compare", "hybrid,lexical", "--limit", "12", "--out", out)
    assert run.exit_code == 0, run.output
    assert "recall@1" in run.stdout and "hybrid" in run.stdout and "lexical" in run.stdout
    results = json.loads((out / "results.json").read_text())
    assert [r["config"]["name"] for r in results["runs"]] == ["hybrid", "lexical"]
    hybrid = results["runs"][0]["metrics"]
    assert hybrid["questions"] == 12 and hybrid["citation_exactness"] == 1.0
    predictions = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(predictions) == 24
    right = [p for p in predictions if p["config"] == "hybrid" and p.get("gold")]
    assert hybrid["f1"] == pytest.approx(100 * sum(p["f1"] for p in right) / len(right))
    report = (out / "report.html").read_text()
    assert report.count("<img") >= 3 and "Recall@k" in report

    again = run_qa("eval", DEMO_CORPUS / "questions.jsonl", "--index", demo_index.index_dir, "--limit", "12",
                   "--out", tmp_path / "b", "--baseline", out / "results.json")
    assert again.exit_code == 0 and "(+0)" in again.stdout


@pytest.mark.slow
def test_compare_mode_crosses_retrievers_top_k_and_reader_variants(demo_index, tmp_path):
    run = run_qa("eval", DEMO_CORPUS / "questions.jsonl", "--index", demo_index.index_dir,
                 "--compare", "hybrid,dense", "--top-k", "5,10", "--reader-passages", "1,2", "--limit", "3",
                 "--out", tmp_path)
    assert run.exit_code == 0, run.output
    names = [r["config"]["name"] for r in json.loads((tmp_path / "results.json").read_text())["runs"]]
    assert names == [f"{m} k={k} read={n}" for m in ("hybrid", "dense") for k in (5, 10) for n in (1, 2)]
    bad = run_qa("eval", DEMO_CORPUS / "questions.jsonl", "--top-k", "five")
    assert bad.exit_code == 1 and "--top-k" in bad.stderr
