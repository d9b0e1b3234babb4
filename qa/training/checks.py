"""What a trained reader is measured by: EM/F1 given the gold paragraph, and margins on simulated retrieval sets."""

from __future__ import annotations

import random

import numpy as np

from qa.eval.metrics import best_over_golds, exact_match, f1
from qa.eval.squad import paragraph_questions


def gold_paragraph_scores(extractor, articles: list[dict], sample: int | None, rng: random.Random,
                          progress: bool, label: str = "gold paragraph") -> dict:
    """EM/F1 (x100) of the best span when the reader is given the gold paragraph."""
    items = list(paragraph_questions(articles))
    total = len(items)
    if sample is not None and sample < total:
        items = rng.sample(items, sample)
    return summarise(gold_paragraph_rows(extractor, items, progress, label), total)


def gold_paragraph_rows(extractor, items: list[tuple[dict, int, dict]], progress: bool,
                        label: str) -> list[tuple[str, float, float]]:
    """(article title, EM, F1) of each (article, paragraph index, question) read with its gold paragraph."""
    from tqdm import tqdm

    rows = []
    for article, index, qa in tqdm(items, desc=label, disable=not progress, mininterval=10):
        context = article["paragraphs"][index]["context"]
        candidates = extractor.extract(qa["question"], [context], top_n=1)
        prediction = context[candidates[0].start : candidates[0].end] if candidates else ""
        golds = [a["text"] for a in qa["answers"]]
        rows.append((article["title"], best_over_golds(exact_match, prediction, golds),
                     best_over_golds(f1, prediction, golds)))
    return rows


def summarise(rows: list[tuple[str, float, float]], available: int) -> dict:
    return {"exact_match": 100 * sum(r[1] for r in rows) / len(rows), "f1": 100 * sum(r[2] for r in rows) / len(rows),
            "questions": len(rows), "questions_available": available, "sampled": len(rows) < available}


def retrieval_set_margins(extractor, articles: list[dict], rng: random.Random, progress: bool,
                          sample: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Margins and labels of the reader's best span on simulated 3-passage retrieval sets.

    70% of sets hold the gold paragraph plus two other paragraphs of the article, 30% hold
    three non-gold paragraphs. The label is 1 when F1(best span, golds) >= 0.5.
    """
    from tqdm import tqdm

    items = list(paragraph_questions(articles))
    if sample is not None and sample < len(items):
        items = rng.sample(items, sample)
    margins, labels = [], []
    for article, index, qa in tqdm(items, desc="retrieval sets", disable=not progress, mininterval=10):
        contexts = [p["context"] for p in article["paragraphs"]]
        others = [i for i in range(len(contexts)) if i != index]
        include_gold = rng.random() < 0.7
        chosen = rng.sample(others, min(2 if include_gold else 3, len(others)))
        if include_gold:
            chosen.append(index)
        rng.shuffle(chosen)
        passages = [contexts[i] for i in chosen]
        candidates, nulls = extractor.extract_with_nulls(qa["question"], passages, top_n=1)
        if not candidates:
            continue
        best = candidates[0]
        prediction = passages[best.passage_index][best.start : best.end]
        margins.append(best.score - nulls[best.passage_index])
        labels.append(float(best_over_golds(f1, prediction, [a["text"] for a in qa["answers"]]) >= 0.5))
    return np.array(margins), np.array(labels)
