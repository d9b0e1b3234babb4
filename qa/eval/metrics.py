"""Evaluation metrics: SQuAD v1.1 answer metrics (same behaviour as the official
evaluate-v1.1 script) and ranking metrics (recall@k, MRR, nDCG)."""

from __future__ import annotations

import math
from collections import Counter
from typing import Callable, Iterable, Sequence

from ..answer_text import normalize_answer


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1(prediction: str, gold: str) -> float:
    """Token-level F1 of the normalised strings (0.0 when nothing overlaps, even if both are empty)."""
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(gold).split()
    overlap = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if overlap == 0:
        return 0.0
    precision = overlap / len(pred_tokens)
    recall = overlap / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def best_over_golds(metric: Callable[[str, str], float], prediction: str, golds: Iterable[str]) -> float:
    """Maximum of metric(prediction, gold) over all gold answers (0.0 if there are none)."""
    return max((metric(prediction, gold) for gold in golds), default=0.0)


# --------------------------------------------------------------------------- ranking


def recall_at_k(ranked: Sequence[str], relevant: Iterable[str], k: int) -> float:
    """Share of the relevant documents found in the first ``k`` results."""
    relevant = set(relevant)
    if not relevant:
        return 0.0
    return len(relevant & set(ranked[:k])) / len(relevant)


def reciprocal_rank(ranked: Sequence[str], relevant: Iterable[str], k: int = 10) -> float:
    relevant = set(relevant)
    for position, doc_id in enumerate(ranked[:k], start=1):
        if doc_id in relevant:
            return 1.0 / position
    return 0.0


def ndcg_at_k(ranked: Sequence[str], relevant: Iterable[str], k: int = 10) -> float:
    """Binary-relevance nDCG, as BEIR computes it for SciFact (all relevance grades are 1)."""
    relevant = set(relevant)
    gains = sum(1.0 / math.log2(position + 1)
                for position, doc_id in enumerate(ranked[:k], start=1) if doc_id in relevant)
    ideal = sum(1.0 / math.log2(position + 1) for position in range(1, min(len(relevant), k) + 1))
    return gains / ideal if ideal else 0.0


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
