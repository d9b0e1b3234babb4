"""Distillation: a shallower student reader learns the teacher's start/end distributions as soft targets."""

from __future__ import annotations

from pathlib import Path

# The student's own loss on the gold labels keeps this share; the teacher's soft targets take the rest.
HARD_LABEL_SHARE = 0.5


def reader_adapter(reader_dir: str) -> Path:
    """The adapter file of a reader directory (a teacher, or the reader a run starts from)."""
    from qa.span_model import ADAPTER_FILE

    path = Path(reader_dir) / ADAPTER_FILE
    if not path.is_file():
        raise SystemExit(f"{reader_dir}: no {ADAPTER_FILE} there")
    return path


def load_teacher(base_path: str, teacher_dir: str, device: str):
    """The teacher reader merged over the base model, frozen, on the training device."""
    from qa.span_model import load_qa_model

    _, model = load_qa_model(base_path, str(reader_adapter(teacher_dir)))
    for param in model.parameters():
        param.requires_grad_(False)
    return model.to(device)


def init_from_reader(student, reader_dir: str) -> int:
    """Start the student from a reader's adapters of the layers it keeps, its LayerNorms and its head.

    The student keeps the base model's first layers, so the LoRA, LayerNorm and head tensors of a
    deeper teacher's layers, or of an earlier run of the same shape, fit it name for name. Returns
    how many tensors were copied.
    """
    import torch
    from safetensors.torch import load_file

    params = dict(student.named_parameters())
    copied = 0
    with torch.no_grad():
        for name, tensor in load_file(str(reader_adapter(reader_dir))).items():
            if name in params and params[name].shape == tensor.shape:
                params[name].copy_(tensor.to(params[name].dtype))
                copied += 1
    return copied


def distillation_loss(student_out, teacher_out, batch: dict, temperature: float):
    """HARD_LABEL_SHARE of the gold-label loss plus the rest of the KL to the teacher, per start and end."""
    import torch.nn.functional as F

    padding = (batch["attention_mask"] == 0)
    soft = 0.0
    for name in ("start_logits", "end_logits"):
        student = student_out[name].float().masked_fill(padding, -1e4) / temperature
        teacher = teacher_out[name].float().masked_fill(padding, -1e4) / temperature
        soft = soft + F.kl_div(F.log_softmax(student, -1), F.log_softmax(teacher, -1),
                               log_target=True, reduction="batchmean")
    # T^2 keeps the soft targets' gradients on the scale of the hard loss's (Hinton et al.).
    soft = soft / 2 * temperature ** 2
    return HARD_LABEL_SHARE * student_out.loss + (1 - HARD_LABEL_SHARE) * soft
