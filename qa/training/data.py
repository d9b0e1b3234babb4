"""SQuAD questions as training windows: examples, article roles, tokenised windows and batches."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Sequence

from qa.eval.squad import paragraph_questions, title_bucket

# Roles of the articles of the training file: most are fitted on, two small slices are kept out,
# one to fit the confidence calibration and one to check the reader and choose its settings.
ROLES = ("fit", "calibration", "validation")


@dataclass(frozen=True)
class Example:
    question: str
    context: str
    answer_start: int | None  # character span of the target; None -> "no answer here" (CLS)
    answer_end: int | None


def article_role(title: str) -> str:
    """"calibration" or "validation" for one article in twenty each, else "fit"."""
    return {0: "calibration", 1: "validation"}.get(title_bucket(title, 20), "fit")


def split_by_role(articles: list[dict]) -> dict[str, list[dict]]:
    roles: dict[str, list[dict]] = {role: [] for role in ROLES}
    for article in articles:
        roles[article_role(article["title"])].append(article)
    return roles


def count_questions(articles: list[dict]) -> int:
    return sum(1 for _ in paragraph_questions(articles))


def _gold_span(context: str, answer: dict) -> tuple[int, int] | None:
    start, text = answer["answer_start"], answer["text"]
    if context[start : start + len(text)] != text:
        start = context.find(text)
        if start < 0:
            return None
    return start, start + len(text)


def build_examples(articles: list[dict], negative_fraction: float, rng: random.Random,
                   hard_fraction: float = 0.0) -> list[Example]:
    """Gold-paragraph examples plus, for a fraction of questions, another paragraph of the same article as a negative.

    A ``hard_fraction`` of the negatives is the paragraph BM25 ranks first for the question, the
    near miss that retrieval puts before the reader; the others are drawn at random.
    """
    examples = []
    lexical: dict[int, object] = {}  # BM25 over an article's paragraphs, built when first needed
    for article, index, qa in paragraph_questions(articles):
        paragraphs = article["paragraphs"]
        span = _gold_span(paragraphs[index]["context"], qa["answers"][0])
        if span is None:
            continue
        examples.append(Example(qa["question"], paragraphs[index]["context"], *span))
        if rng.random() < negative_fraction:
            answers = [a["text"].lower() for a in qa["answers"]]
            # a paragraph that happens to contain the answer string is not a clean negative
            others = [i for i, p in enumerate(paragraphs)
                      if i != index and not any(a in p["context"].lower() for a in answers)]
            if not others:
                continue
            if hard_fraction and rng.random() < hard_fraction:
                if id(article) not in lexical:
                    lexical[id(article)] = _paragraph_bm25(paragraphs)
                scores = lexical[id(article)].scores(qa["question"])
                chosen = max(others, key=lambda i: scores[i])
            else:
                chosen = rng.choice(others)
            examples.append(Example(qa["question"], paragraphs[chosen]["context"], None, None))
    return examples


def _paragraph_bm25(paragraphs: list[dict]):
    """BM25 over an article's paragraphs; row i is paragraph i."""
    from qa.lexical import LexicalIndex

    return LexicalIndex.build([p["context"] for p in paragraphs], list(range(len(paragraphs))))


def encode_examples(tokenizer, examples: Sequence[Example], max_length: int, stride: int) -> list[dict]:
    """Tokenise into overflow windows with start/end token labels (0 = CLS when the answer is not inside)."""
    windows = []
    for chunk_start in range(0, len(examples), 512):
        chunk = examples[chunk_start : chunk_start + 512]
        encoding = tokenizer(
            [e.question for e in chunk],
            [e.context for e in chunk],
            truncation="only_second",
            max_length=max_length,
            stride=stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
        )
        for w, sample in enumerate(encoding["overflow_to_sample_mapping"]):
            windows.append(_window(encoding, w, chunk[sample]))
    return windows


def _window(encoding, w: int, example: Example) -> dict:
    offsets = encoding["offset_mapping"][w]
    context_tokens = [k for k, sid in enumerate(encoding.sequence_ids(w)) if sid == 1]
    start_tok = end_tok = 0
    if example.answer_start is not None and context_tokens:
        first, last = context_tokens[0], context_tokens[-1]
        if offsets[first][0] <= example.answer_start and offsets[last][1] >= example.answer_end:
            start_tok = max(k for k in context_tokens if offsets[k][0] <= example.answer_start)
            end_tok = min(k for k in context_tokens if k >= start_tok and offsets[k][1] >= example.answer_end)
    return {"input_ids": encoding["input_ids"][w], "token_type_ids": encoding["token_type_ids"][w],
            "start": start_tok, "end": end_tok}


def epoch_batches(windows: list[dict], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """The batches (window indices) of one epoch: shuffled, grouped by similar length, batch order shuffled.

    Depends only on (seed, epoch), so a resumed run sees exactly the batches it would have seen.
    """
    rng = random.Random(seed * 1_000_003 + epoch)
    order = list(range(len(windows)))
    rng.shuffle(order)
    batches = []
    pool = batch_size * 50
    for i in range(0, len(order), pool):
        group = sorted(order[i : i + pool], key=lambda k: len(windows[k]["input_ids"]))
        batches.extend(group[j : j + batch_size] for j in range(0, len(group), batch_size))
    rng.shuffle(batches)
    return batches


def collate(batch: list[dict]):
    import torch

    length = max(len(w["input_ids"]) for w in batch)
    input_ids = torch.zeros(len(batch), length, dtype=torch.long)
    token_type_ids = torch.zeros_like(input_ids)
    attention_mask = torch.zeros_like(input_ids)
    for row, window in enumerate(batch):
        n = len(window["input_ids"])
        input_ids[row, :n] = torch.tensor(window["input_ids"])
        token_type_ids[row, :n] = torch.tensor(window["token_type_ids"])
        attention_mask[row, :n] = 1
    return {
        "input_ids": input_ids,
        "token_type_ids": token_type_ids,
        "attention_mask": attention_mask,
        "start_positions": torch.tensor([w["start"] for w in batch]),
        "end_positions": torch.tensor([w["end"] for w in batch]),
    }
