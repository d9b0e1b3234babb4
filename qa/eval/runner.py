"""Evaluate retrieval and answers over a question set; one result per configuration."""

from __future__ import annotations

import hashlib
import os
import random
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Literal

from ..calibration import calibrated_errors, expected_calibration_error, reliability_table
from ..errors import InvalidInput
from ..pipeline import Pipeline
from ..precision import resolve_precision
from ..retrieval import Mode
from ..settings import Settings
from ..store import FORMAT_VERSION
from .metrics import best_over_golds, exact_match, f1, ndcg_at_k, percentile, recall_at_k, reciprocal_rank
from .questions import NewsChecks, Question, QuestionSet, load_beir, load_questions_jsonl, load_squad
from .squad import article_split

RIGHT_F1 = 0.5  # an answer counts as right at SQuAD F1 >= 0.5 (used for calibration and coverage)
RECALL_KS = (1, 5, 10, 20)
# Published reference numbers, printed beside ours, each with its source.
REFERENCES = {
    "squad": [("SQuAD paper logistic regression, F1 with gold paragraph", "reader_f1", 51.0,
               "Rajpurkar et al. 2016"),
              ("human performance, F1", "reader_f1", 86.8, "Rajpurkar et al. 2016")],
    "scifact": [("BM25, nDCG@10", "ndcg@10", 0.665, "BEIR paper, Thakur et al. 2021, Table 2"),
                ("BM25 + cross-encoder, nDCG@10", "ndcg@10", 0.688, "BEIR paper, Table 2")],
}


@dataclass(frozen=True)
class RunConfig:
    name: str
    mode: Mode = "hybrid"
    read: Literal["retrieved", "gold", "none"] = "retrieved"
    top_k: int = 20
    reader_passages: int | None = None  # None: the configured number
    reader: str | None = None  # a shipped reader to read with; None: the configured reader


@dataclass
class RunResult:
    config: RunConfig
    metrics: dict[str, float] = field(default_factory=dict)
    predictions: list[dict] = field(default_factory=list)
    curves: dict[str, list] = field(default_factory=dict)


def load_question_set(path: Path, split: str = "test") -> QuestionSet:
    """Project JSONL, SQuAD JSON (``split``: train/calibration/test/all) or a BEIR folder."""
    path = Path(path)
    if path.is_dir():
        return load_beir(path, "test" if split == "all" else split)
    if path.suffix == ".json":
        qset = load_squad(path)
        if split != "all":
            qset.questions = [q for q in qset.questions if article_split(q.group) == split]
            qset.name = f"{qset.name}-{split}"
        return qset
    if path.suffix == ".jsonl":
        return load_questions_jsonl(path)
    raise InvalidInput(f"{path}: expected a .jsonl question file, SQuAD .json or a BEIR folder")


def choose_questions(questions: list[Question], limit: int | None, sample: int | None,
                     seed: int) -> list[Question]:
    if sample is not None and sample < len(questions):
        questions = random.Random(seed).sample(questions, sample)
    return questions[:limit] if limit else questions


def run_configs(modes: list[Mode], top_ks: list[int], passages: list[int | None],
                read: Literal["retrieved", "none"], gold_passage: bool) -> list[RunConfig]:
    """Every retriever crossed with every top-k and number of passages read; each named by what varies."""
    configs = []
    for mode in modes:
        for top_k in top_ks:
            for n in passages:
                name = mode + (f" k={top_k}" if len(top_ks) > 1 else "") + (f" read={n}" if len(passages) > 1 else "")
                configs.append(RunConfig(name, mode=mode, read=read, top_k=top_k, reader_passages=n))
    if gold_passage:
        configs.append(RunConfig("gold-passage", read="gold"))
    return configs


def reader_label(settings: Settings) -> str:
    return Path(settings.reader_model).name if settings.reader_model else settings.reader


def against_reader(configs: list[RunConfig], settings: Settings, baseline: str) -> list[RunConfig]:
    """``configs`` with the configured reader, then again with shipped reader ``baseline``; names say which."""
    current = [replace(c, name=f"{c.name} · reader {reader_label(settings)}") for c in configs]
    return current + [replace(c, name=f"{c.name} · reader {baseline}", reader=baseline) for c in configs]


def cached_index_dir(qset: QuestionSet, settings: Settings) -> Path:
    """Indexes of bundled corpora are cached by the corpus content and the index settings."""
    digest = hashlib.sha256()
    for key in (FORMAT_VERSION, settings.model, resolve_precision(settings.precision),
                settings.chunk_tokens, settings.chunk_overlap, settings.sentence_vectors):
        digest.update(str(key).encode())
    for doc in qset.documents:
        digest.update(doc.content_hash.encode())
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "qa" / "indexes"
    return cache / f"{qset.corpus_name}-{digest.hexdigest()[:16]}"


def evaluate(qset: QuestionSet, questions: list[Question], pipeline: Pipeline, config: RunConfig,
             *, progress: bool = False) -> RunResult:
    result = RunResult(config)
    update: dict = {"reader_passages": config.reader_passages} if config.reader_passages else {}
    if config.reader:
        update |= {"reader": config.reader, "reader_model": None}
    if update:
        variant = pipeline.settings.model_copy(update=update)
        reader = None if config.reader else pipeline.reader  # None: the variant loads its own
        pipeline = Pipeline(variant, embedder=pipeline.embedder, reader=reader)
    index = pipeline.index
    rows = []
    for question in _progress(questions, config.name, progress):
        rows.append(_one(question, pipeline, index, config))
    result.predictions = rows
    result.metrics, result.curves = summarize(rows, config)
    return result


def _one(question: Question, pipeline: Pipeline, index, config: RunConfig) -> dict:
    row: dict = {"id": question.id, "question": question.question, "gold": list(question.answers),
                 "gold_doc_ids": list(question.doc_ids)}
    if config.read == "gold":
        passage = index.document(question.doc_ids[0]).text
        started = time.perf_counter()
        guesses = pipeline.reader.read(question.question, [passage], top_n=1)
        row["timings_ms"] = {"read": (time.perf_counter() - started) * 1000}
        best = guesses[0] if guesses else None
        row["prediction"] = passage[best.start:best.end] if best else ""
        row["confidence"] = best.confidence if best else 0.0
        row["abstained"] = False
    elif config.read == "none":
        started = time.perf_counter()
        hits = pipeline.search(question.question, config.top_k, mode=config.mode)
        row["timings_ms"] = {"retrieve": (time.perf_counter() - started) * 1000}
        row["retrieved"] = list(dict.fromkeys(h.chunk.doc_id for h in hits))
    else:
        answer = pipeline.ask(question.question, top_k=config.top_k, mode=config.mode)
        guess = answer.alternatives[0] if answer.abstained and answer.alternatives else answer
        row.update(prediction=(guess.text or "") if guess else "", confidence=answer.confidence,
                   abstained=answer.abstained, timings_ms=answer.timings_ms,
                   retrieved=list(dict.fromkeys(p.doc_id for p in answer.passages)),
                   citations=[c.model_dump() for c in answer.citations])
        row["citations_exact"] = all(
            index.document(c.doc_id).text[c.start:c.end] == c.quote for c in answer.citations)
        if question.news:
            row["news_checks"] = news_checks(question.news, answer)
    if question.answers and "prediction" in row:
        row["f1"] = best_over_golds(f1, row["prediction"], question.answers)
        row["em"] = best_over_golds(exact_match, row["prediction"], question.answers)
        row["right"] = row["f1"] >= RIGHT_F1
    return row


NEWS_CHECKS = ("outlets", "sources", "conflict", "day")


def news_checks(expected: NewsChecks, answer) -> dict[str, bool]:
    """Each news check the question asks for, passed or not (an abstention passes none)."""
    shown = not answer.abstained
    checks: dict[str, bool] = {}
    if expected.outlets:
        cited = {c.source for c in answer.citations}
        checks["outlets"] = shown and set(expected.outlets) <= cited
    if expected.sources is not None:
        checks["sources"] = shown and answer.sources >= expected.sources
    if expected.conflict is not None:
        checks["conflict"] = shown and any(f1(c.text, expected.conflict) >= RIGHT_F1 for c in answer.conflicts)
    if expected.day is not None:
        text, day = expected.day
        checks["day"] = shown and any(d.text == text and d.date == day for c in answer.citations for d in c.dates)
    return checks


def summarize(rows: list[dict], config: RunConfig) -> tuple[dict[str, float], dict[str, list]]:
    metrics: dict[str, float] = {"questions": len(rows)}
    curves: dict[str, list] = {}
    ranked = [r for r in rows if "retrieved" in r and r["gold_doc_ids"]]
    if ranked:
        for k in RECALL_KS:
            metrics[f"recall@{k}"] = _mean(recall_at_k(r["retrieved"], r["gold_doc_ids"], k) for r in ranked)
        metrics["mrr@10"] = _mean(reciprocal_rank(r["retrieved"], r["gold_doc_ids"]) for r in ranked)
        metrics["ndcg@10"] = _mean(ndcg_at_k(r["retrieved"], r["gold_doc_ids"]) for r in ranked)
        curves["recall"] = [[k, metrics[f"recall@{k}"]] for k in RECALL_KS]
    answerable = [r for r in rows if r["gold"] and "f1" in r]
    if answerable:
        metrics["em"] = 100 * _mean(r["em"] for r in answerable)
        metrics["f1"] = 100 * _mean(r["f1"] for r in answerable)
        answered = [r["f1"] if not r.get("abstained") else 0.0 for r in answerable]
        metrics["f1_with_abstention"] = 100 * _mean(answered)
        metrics["answered_right"] = _mean(1.0 if r.get("right") and not r.get("abstained") else 0.0
                                          for r in answerable)
        curves["coverage"] = _coverage(answerable)
        curves["reliability"] = reliability_table([r["confidence"] for r in answerable],
                                                  [1.0 if r["right"] else 0.0 for r in answerable])
        metrics["calibration_error"] = expected_calibration_error(curves["reliability"])
        chance = calibrated_errors([r["confidence"] for r in answerable])
        metrics["calibration_error_by_chance"] = float(chance.mean())
        metrics["calibration_p_value"] = float((chance >= metrics["calibration_error"]).mean())
    unanswerable = [r for r in rows if not r["gold"] and not r["gold_doc_ids"] and "abstained" in r]
    if unanswerable:
        abstained = [r for r in rows if r.get("abstained")]
        right_abstentions = sum(1 for r in unanswerable if r["abstained"])
        metrics["abstention_recall"] = right_abstentions / len(unanswerable)
        metrics["abstention_precision"] = right_abstentions / len(abstained) if abstained else 0.0
    for check in NEWS_CHECKS:
        done = [r["news_checks"][check] for r in rows if check in r.get("news_checks", {})]
        if done:
            metrics[f"news_{check}"] = _mean(1.0 if passed else 0.0 for passed in done)
            metrics[f"news_{check}_questions"] = len(done)
    cited = [r for r in rows if "citations_exact" in r]
    if cited:
        metrics["citation_exactness"] = _mean(1.0 if r["citations_exact"] else 0.0 for r in cited)
    for stage in ("retrieve", "read", "total"):
        values = [r["timings_ms"][stage] for r in rows if stage in r.get("timings_ms", {})]
        if values:
            metrics[f"{stage}_p50_ms"] = percentile(values, 50)
            metrics[f"{stage}_p95_ms"] = percentile(values, 95)
            curves[f"{stage}_ms"] = values
    return metrics, curves


def _mean(values: Iterable[float]) -> float:
    values = list(values)
    return sum(values) / len(values) if values else 0.0


def _coverage(rows: list[dict]) -> list[list[float]]:
    """Accuracy among the most confident answers, at each coverage level."""
    ordered = sorted(rows, key=lambda r: -r["confidence"])
    points = []
    for percent in range(10, 101, 10):
        top = ordered[: max(1, round(len(ordered) * percent / 100))]
        points.append([percent / 100, _mean(1.0 if r["right"] else 0.0 for r in top)])
    return points


def _progress(items: list, label: str, enabled: bool):
    if not enabled:
        yield from items
        return
    from tqdm import tqdm

    yield from tqdm(items, desc=label, unit="q", file=sys.stderr, leave=False)
