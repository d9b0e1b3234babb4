"""Reader training: one tiny step, a resumed run, and the checks on shipped weight files."""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import subprocess
import sys

import pytest

from qa.errors import ReaderUnavailable
from qa.span_model import ADAPTER_FILE, CALIBRATION_FILE, REPORT_FILE
from qa.training.data import article_role, build_examples, epoch_batches

PARAGRAPHS = [
    ("The harbour bridge opened in 1932 after eight years of work.",
     [("When did the harbour bridge open?", "1932"), ("How long did the work take?", "eight years")]),
    ("Its arch carries eight lanes of traffic and two railway lines.",
     [("How many railway lines does the arch carry?", "two")]),
    ("Painters repaint the steel every decade with grey paint.",
     [("What colour is the paint?", "grey")]),
]


def _title_with_role(role: str) -> str:
    return next(f"Bridge {k}" for k in range(10_000) if article_role(f"Bridge {k}") == role)


def _article(title: str) -> dict:
    paragraphs = []
    for context, qas in PARAGRAPHS:
        paragraphs.append({"context": context, "qas": [
            {"id": f"{title}-{q}", "question": q, "answers": [{"text": a, "answer_start": context.index(a)}]}
            for q, a in qas]})
    return {"title": title, "paragraphs": paragraphs}


@pytest.fixture
def tiny_squad(tmp_path):
    path = tmp_path / "tiny-squad.json"
    articles = [_article(_title_with_role(role)) for role in ("fit", "calibration", "validation")]
    path.write_text(json.dumps({"version": "1.1", "data": articles}))
    return path


def test_examples_hold_the_gold_span_and_clean_negatives(tiny_squad):
    article = json.loads(tiny_squad.read_text())["data"][0]
    examples = build_examples([article], negative_fraction=1.0, rng=random.Random(0))
    positives = [e for e in examples if e.answer_start is not None]
    assert [e.context[e.answer_start:e.answer_end] for e in positives] == ["1932", "eight years", "two", "grey"]
    for negative in (e for e in examples if e.answer_start is None):
        # "eight" also appears in the second paragraph, so that paragraph is never a negative for it
        assert not (negative.question.startswith("How long") and "eight" in negative.context)


def test_hard_negatives_are_the_paragraph_most_like_the_question():
    contexts = ["The footbridge is painted grey every spring.",
                "The colour of the paint on the railings is chosen by the council.",
                "Trams cross the river on the old stone viaduct.",
                "A ferry ran here until the bridge opened."]
    question = "What colour is the paint on the footbridge?"
    article = {"title": "Footbridge", "paragraphs": [
        {"context": contexts[0], "qas": [{"id": "q", "question": question,
                                          "answers": [{"text": "grey", "answer_start": contexts[0].index("grey")}]}]},
        *({"context": c, "qas": []} for c in contexts[1:])]}

    def negatives(hard_fraction: float) -> set[str]:
        return {e.context for seed in range(12)
                for e in build_examples([article], 1.0, random.Random(seed), hard_fraction) if e.answer_start is None}

    assert negatives(1.0) == {contexts[1]}
    assert len(negatives(0.0)) > 1


def test_a_run_can_start_from_a_shipped_reader():
    from safetensors.torch import load_file

    import qa.reading
    from qa.embedding import resolve_model_path
    from qa.settings import DEFAULT_MODEL
    from qa.training.loop import TrainConfig, build_model

    start = qa.reading.WEIGHTS / "fast"
    model = build_model(str(resolve_model_path(DEFAULT_MODEL)), TrainConfig(layers=3, init=str(start)))
    params = dict(model.named_parameters())
    saved = load_file(str(start / ADAPTER_FILE))
    shared = [name for name in saved if name in params]
    assert len(shared) > 10
    assert all(params[name].detach().equal(saved[name].float()) for name in shared)


def test_epoch_batches_depend_only_on_seed_and_epoch():
    windows = [{"input_ids": [0] * (n % 7 + 1)} for n in range(100)]
    assert epoch_batches(windows, 8, seed=3, epoch=1) == epoch_batches(windows, 8, seed=3, epoch=1)
    assert epoch_batches(windows, 8, seed=3, epoch=1) != epoch_batches(windows, 8, seed=3, epoch=2)
    assert sorted(i for batch in epoch_batches(windows, 8, 3, 0) for i in batch) == list(range(100))


@pytest.mark.slow
def test_training_runs_a_step_writes_hashed_weights_and_resumes(tiny_squad, tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "qa.training", "--squad", str(tiny_squad), "--out", str(out),
               "--batch-size", "4", "--rank", "4", "--calibration-sample", "20", "--check-sample", "20", "--no-progress"]
    first = subprocess.run([*command, "--epochs", "1"], capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr
    report = json.loads((out / REPORT_FILE).read_text())
    assert report["train"]["steps"] == report["train"]["total_steps"] >= 1
    assert report["data"]["sha256"] == hashlib.sha256(tiny_squad.read_bytes()).hexdigest()
    for name in (ADAPTER_FILE, CALIBRATION_FILE):
        assert report["files"][name] == hashlib.sha256((out / name).read_bytes()).hexdigest()
    assert (out / "checkpoint.pt").is_file()

    # A second run with more epochs resumes from the checkpoint instead of starting over.
    again = subprocess.run([*command, "--epochs", "2"], capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert f"resumed at step {report['train']['steps']}" in again.stdout
    assert json.loads((out / REPORT_FILE).read_text())["train"]["steps"] > report["train"]["steps"]
    # ...and one with other settings refuses the checkpoint rather than mixing two runs.
    other = subprocess.run([*command, "--lr", "0.01"], capture_output=True, text=True, timeout=600)
    assert other.returncode != 0 and "other settings or data" in other.stderr


@pytest.mark.slow
def test_a_distilled_student_trains_and_loads_shallower(tiny_squad, tmp_path):
    import qa.reading
    from qa.embedding import resolve_model_path
    from qa.settings import DEFAULT_MODEL
    from qa.span_model import load_qa_model, read_adapter_metadata

    teacher = qa.reading.WEIGHTS / "previous"
    out = tmp_path / "student"
    command = [sys.executable, "-m", "qa.training", "--squad", str(tiny_squad), "--out", str(out), "--epochs", "1",
               "--batch-size", "4", "--rank", "16", "--layers", "1", "--teacher", str(teacher),
               "--calibration-sample", "20", "--check-sample", "20", "--no-progress"]
    run = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    report = json.loads((out / REPORT_FILE).read_text())
    assert report["teacher_adapter_sha256"] == hashlib.sha256((teacher / ADAPTER_FILE).read_bytes()).hexdigest()
    assert report["hyperparameters"]["teacher"] == str(teacher)
    assert read_adapter_metadata(str(out / ADAPTER_FILE))["layers"] == "1"
    _, model = load_qa_model(resolve_model_path(DEFAULT_MODEL), str(out / ADAPTER_FILE))
    assert len(model.base_model.encoder.layer) == 1


def _copy_weights(tmp_path, monkeypatch, name: str = "previous"):
    import qa.reading

    target = tmp_path / "weights"
    shutil.copytree(qa.reading.WEIGHTS / name, target / name)
    monkeypatch.setattr(qa.reading, "WEIGHTS", target)
    return target / name


def test_shipped_weights_match_their_recorded_hashes():
    from qa.reading import shipped_readers, verified_weights

    assert shipped_readers()
    for name in shipped_readers():
        assert verified_weights(name).name == name


def test_a_damaged_weight_file_is_a_clear_error(tmp_path, monkeypatch):
    from qa.reading import ExtractiveReader

    folder = _copy_weights(tmp_path, monkeypatch)
    adapter = folder / ADAPTER_FILE
    data = bytearray(adapter.read_bytes())
    data[-1] ^= 0xFF
    adapter.write_bytes(bytes(data))
    with pytest.raises(ReaderUnavailable, match="does not match the sha256"):
        ExtractiveReader(shipped="previous").read("who?", ["text"], top_n=1)


def test_an_unknown_shipped_reader_names_the_ones_there():
    from qa.reading import ExtractiveReader

    with pytest.raises(ReaderUnavailable, match="shipped: .*previous"):
        ExtractiveReader(shipped="no-such-reader").read("who?", ["text"], top_n=1)


def test_distillation_loss_is_the_hard_loss_share_when_the_student_matches_the_teacher():
    import torch
    from transformers.modeling_outputs import QuestionAnsweringModelOutput

    from qa.training.distill import HARD_LABEL_SHARE, distillation_loss

    torch.manual_seed(0)
    logits = {name: torch.randn(2, 6) for name in ("start_logits", "end_logits")}
    batch = {"attention_mask": torch.tensor([[1] * 6, [1, 1, 1, 1, 0, 0]])}
    hard = torch.tensor(1.5)
    same = distillation_loss(QuestionAnsweringModelOutput(loss=hard, **logits),
                             QuestionAnsweringModelOutput(**logits), batch, temperature=2.0)
    assert float(same) == pytest.approx(HARD_LABEL_SHARE * 1.5, abs=1e-6)

    # what the teacher says about padding is not a target
    padded = {name: value.clone() for name, value in logits.items()}
    padded["start_logits"][1, 4:] += 5.0
    assert float(distillation_loss(QuestionAnsweringModelOutput(loss=hard, **logits),
                                   QuestionAnsweringModelOutput(**padded), batch, 2.0)) == pytest.approx(float(same), abs=1e-5)
    shifted = {name: value.clone() for name, value in logits.items()}
    shifted["end_logits"][0, 0] += 3.0
    assert float(distillation_loss(QuestionAnsweringModelOutput(loss=hard, **logits),
                                   QuestionAnsweringModelOutput(**shifted), batch, 2.0)) > float(same) + 0.01


def test_a_student_starts_from_the_teacher_layers_it_keeps():
    import torch
    from safetensors.torch import load_file

    import qa.reading
    from qa.embedding import resolve_model_path
    from qa.settings import DEFAULT_MODEL
    from qa.training.loop import TrainConfig, build_model

    teacher = qa.reading.WEIGHTS / "previous"
    saved = load_file(str(teacher / ADAPTER_FILE))
    student = build_model(resolve_model_path(DEFAULT_MODEL), TrainConfig(layers=1, rank=16, teacher=str(teacher)))
    params = dict(student.named_parameters())
    assert student.config.num_hidden_layers == 1
    for name in ("qa_outputs.weight", "bert.encoder.layer.0.attention.self.query.lora_A",
                 "bert.encoder.layer.0.output.LayerNorm.weight"):
        assert torch.equal(params[name].detach().half(), saved[name])
    assert "bert.encoder.layer.1.attention.self.query.lora_A" in saved and not any(".layer.1." in n for n in params)
