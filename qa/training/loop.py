"""The training loop of the span reader: LoRA on all-MiniLM-L6-v2, seeded, checkpointed, resumable, time-bounded."""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .data import Example, collate, encode_examples, epoch_batches
from .distill import distillation_loss, init_from_reader, load_teacher

CHECKPOINT_FILE = "checkpoint.pt"


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides the weights; recorded beside them."""
    epochs: float = 1.0
    max_length: int = 256
    stride: int = 96
    batch_size: int = 32
    lr: float = 6e-4
    rank: int = 64
    alpha: float = 128.0
    negative_fraction: float = 0.25
    warmup_fraction: float = 0.04
    weight_decay: float = 0.01
    seed: int = 0
    layers: int | None = None
    # Dropout off: it roughly doubled the CPU step time, and a run of about one epoch does not overfit.
    dropout: float = 0.0
    # A reader directory to distil from: its start/end distributions become soft targets.
    teacher: str | None = None
    temperature: float = 2.0
    # A share of the negatives is the article's paragraph most like the question (BM25), not a random one.
    hard_negatives: float = 0.0
    # A reader directory whose adapters, LayerNorms and head the run starts from (default: the teacher's).
    init: str | None = None


@dataclass
class TrainResult:
    model: object
    steps: int
    planned_steps: int
    total_steps: int
    windows: int
    examples: int
    negatives: int
    train_seconds: float
    resumed_from_step: int


def lr_factor(step: int, warmup: int, planned: int) -> float:
    """Linear warm-up to 1, then linear decay to 0 at the planned last step."""
    return min((step + 1) / warmup, max(0.0, (planned - step) / max(1, planned - warmup)))


def build_model(base_path: str, config: TrainConfig):
    from transformers import AutoModelForQuestionAnswering

    from qa.span_model import inject_lora, keep_layers, quiet_loading

    with quiet_loading():  # the fresh QA head is reported as "missing"; that is expected
        model = AutoModelForQuestionAnswering.from_pretrained(
            base_path, attn_implementation="eager",  # eager attention trains faster than sdpa on CPU
            hidden_dropout_prob=config.dropout, attention_probs_dropout_prob=config.dropout)
    if config.layers is not None:
        keep_layers(model, config.layers)
    inject_lora(model, rank=config.rank, alpha=config.alpha, train_layer_norms=True)
    start = config.init or config.teacher
    if start is not None:
        init_from_reader(model, start)
    return model


def _save_checkpoint(path: Path, model, optimizer, state: dict) -> None:
    import torch

    trainable = {n: p.detach().cpu() for n, p in model.named_parameters() if p.requires_grad}
    temporary = path.with_suffix(".tmp")
    torch.save({**state, "trainable": trainable, "optimizer": optimizer.state_dict()}, temporary)
    os.replace(temporary, path)  # a kill mid-save leaves the previous checkpoint whole


def train(examples: list[Example], tokenizer, base_path: str, config: TrainConfig, out_dir: Path, *,
          data_sha256: str, device: str = "cpu", bf16: bool = False, time_budget_s: float | None = None,
          checkpoint_every_s: float = 300.0, resume: bool = True, progress: bool = True) -> TrainResult:
    """Train until the planned steps are done or the time budget (seconds from this call) runs out.

    The step count, and with it the LR decay, is re-planned from the measured step time so that
    training ends on time. A checkpoint in out_dir from the same config and data is resumed.
    """
    import torch
    from tqdm import tqdm

    started = time.time()
    torch.manual_seed(config.seed)
    windows = encode_examples(tokenizer, examples, config.max_length, config.stride)
    negatives = sum(e.answer_start is None for e in examples)
    print(f"train: {len(examples)} examples ({negatives} negatives) -> {len(windows)} windows", flush=True)

    model = build_model(base_path, config).to(device)
    teacher = load_teacher(base_path, config.teacher, device) if config.teacher is not None else None
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    no_decay = [p for n, p in trainable if n.endswith("bias") or "LayerNorm" in n]
    decay = [p for n, p in trainable if not (n.endswith("bias") or "LayerNorm" in n)]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=config.lr)
    steps_per_epoch = math.ceil(len(windows) / config.batch_size)
    total_steps = max(1, int(round(config.epochs * steps_per_epoch)))
    warmup = max(1, int(config.warmup_fraction * total_steps))
    step, planned, loss_ema, earlier_seconds = 0, total_steps, None, 0.0

    checkpoint = out_dir / CHECKPOINT_FILE
    # More epochs may extend a run; any other change of settings or data starts a different one.
    identity = {"config": {**asdict(config), "epochs": None}, "data_sha256": data_sha256, "windows": len(windows)}
    if resume and checkpoint.is_file():
        saved = torch.load(checkpoint, map_location=device, weights_only=False)
        if {k: saved.get(k) for k in identity} != identity:
            raise SystemExit(f"{checkpoint} is from other settings or data; remove it or pass --no-resume")
        params = dict(model.named_parameters())
        with torch.no_grad():
            for name, tensor in saved["trainable"].items():
                params[name].copy_(tensor)
        optimizer.load_state_dict(saved["optimizer"])
        step, loss_ema, earlier_seconds = saved["step"], saved["loss_ema"], saved["train_seconds"]
        print(f"resumed at step {step} of {total_steps}", flush=True)
    resumed_from = step

    model.train()
    bar = tqdm(total=planned, initial=step, desc="train", disable=not progress, mininterval=10)
    train_started = last_save = time.time()

    def save() -> None:
        _save_checkpoint(checkpoint, model, optimizer, {
            **identity, "step": step, "planned_steps": planned, "loss_ema": loss_ema,
            "train_seconds": earlier_seconds + time.time() - train_started})

    while step < planned:
        epoch, offset = divmod(step, steps_per_epoch)
        for indices in epoch_batches(windows, config.batch_size, config.seed, epoch)[offset:]:
            batch = {k: v.to(device) for k, v in collate([windows[i] for i in indices]).items()}
            for group in optimizer.param_groups:
                group["lr"] = config.lr * lr_factor(step, warmup, planned)
            with torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16, enabled=bf16):
                output = model(**batch)
                if teacher is None:
                    loss = output.loss
                else:
                    with torch.no_grad():
                        teacher_output = teacher(**{k: v for k, v in batch.items() if not k.endswith("_positions")})
                    loss = distillation_loss(output, teacher_output, batch, config.temperature)
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for _, p in trainable], 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            value = float(loss.item())
            loss_ema = value if loss_ema is None else 0.98 * loss_ema + 0.02 * value
            bar.update(1)
            bar.set_postfix(loss=f"{loss_ema:.3f}", refresh=False)
            if time_budget_s is not None and step % 10 == 0:
                per_step = (time.time() - train_started) / (step - resumed_from)
                remaining = time_budget_s - (time.time() - started)
                new_plan = max(step + 1, min(total_steps, step + int(remaining / per_step)))
                if new_plan != planned:
                    planned = bar.total = new_plan
            if time.time() - last_save >= checkpoint_every_s:
                save()
                last_save = time.time()
            if step >= planned:
                break
    bar.close()
    save()
    return TrainResult(model=model.to("cpu"), steps=step, planned_steps=planned, total_steps=total_steps,
                       windows=len(windows), examples=len(examples), negatives=negatives,
                       train_seconds=round(earlier_seconds + time.time() - train_started, 1),
                       resumed_from_step=resumed_from)

