"""Extractive span reader: model loading, LoRA adapters and a vectorised best-span search.

torch / transformers are imported inside functions only, so importing this module
stays cheap for code paths that never touch the reader.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np

from .sentences import sentence_spans

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerFast

ADAPTER_FORMAT = "qa-span-lora-v1"
BASE_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
# The files a trained reader is made of (qa/weights holds the shipped ones).
ADAPTER_FILE = "reader-adapter.safetensors"
CALIBRATION_FILE = "reader-calibration.json"
REPORT_FILE = "reader-training.json"
# Module-name suffixes of the BERT encoder linears that get LoRA adapters
# ("output.dense" also covers "attention.output.dense").
LORA_TARGETS = (
    "attention.self.query",
    "attention.self.key",
    "attention.self.value",
    "attention.output.dense",
    "intermediate.dense",
    "output.dense",
)


# --------------------------------------------------------------------------- loading


def load_qa_model(base_path: str, adapter_path: str | None = None) -> tuple[PreTrainedTokenizerFast, PreTrainedModel]:
    """Load (tokenizer, model) in eval mode.

    With adapter_path, base_path is the plain encoder (e.g. all-MiniLM-L6-v2) and the
    saved LoRA deltas, QA head and LayerNorms are merged in, giving an ordinary HF QA
    model. Without it, base_path must already be an extractive QA model directory.
    """
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_path)
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"{base_path}: a fast tokenizer (offset mappings) is required")
    if adapter_path is None:
        model = AutoModelForQuestionAnswering.from_pretrained(base_path)
    else:
        # The load report would flag the (about to be replaced) QA head as missing.
        with quiet_loading():
            model = AutoModelForQuestionAnswering.from_pretrained(base_path)
        layers = read_adapter_metadata(adapter_path).get("layers")
        if layers is not None:
            keep_layers(model, int(layers))
        merge_adapter(model, adapter_path)
    model.eval()
    return tokenizer, model


@contextmanager
def quiet_loading():
    """Load a model without transformers' progress bar and load report: neither is for the user."""
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def keep_layers(model: PreTrainedModel, count: int) -> None:
    """Drop all but the first ``count`` transformer layers: a shallower, faster reader."""
    encoder = model.base_model.encoder
    if not 1 <= count <= len(encoder.layer):
        raise ValueError(f"the model has {len(encoder.layer)} layers; cannot keep {count}")
    del encoder.layer[count:]
    model.config.num_hidden_layers = count


# --------------------------------------------------------------------------- LoRA


def _lora_forward_hook(module, inputs, output):
    import torch.nn.functional as F

    delta = F.linear(F.linear(inputs[0], module.lora_A), module.lora_B)
    return output + module.lora_scale * delta


def inject_lora(
    model: PreTrainedModel,
    rank: int = 16,
    alpha: float = 32.0,
    targets: Sequence[str] = LORA_TARGETS,
    train_layer_norms: bool = True,
) -> list[str]:
    """Freeze the model and add trainable low-rank adapters to the targeted linears.

    Each targeted nn.Linear gets parameters lora_A (rank x in, random) and lora_B
    (out x rank, zeros) and a forward hook adding (alpha / rank) * x A^T B^T, so the
    model starts out unchanged. The QA head (qa_outputs) and, optionally, every
    LayerNorm stay trainable. Returns the names of the adapted modules.
    """
    import math

    import torch
    from torch import nn

    for param in model.parameters():
        param.requires_grad_(False)
    adapted = []
    for name, module in model.named_modules():
        if not isinstance(module, nn.Linear) or ".layer." not in name:
            continue
        if not any(name.endswith(suffix) for suffix in targets):
            continue
        lora_a = torch.empty(rank, module.in_features, dtype=module.weight.dtype)
        nn.init.kaiming_uniform_(lora_a, a=math.sqrt(5))
        module.register_parameter("lora_A", nn.Parameter(lora_a))
        module.register_parameter("lora_B", nn.Parameter(torch.zeros(module.out_features, rank, dtype=module.weight.dtype)))
        module.lora_scale = alpha / rank
        module.lora_hook = module.register_forward_hook(_lora_forward_hook)
        adapted.append(name)
    if not adapted:
        raise ValueError("no linear layer matched the LoRA targets")
    for name, param in model.named_parameters():
        if name.startswith("qa_outputs.") or (train_layer_norms and "LayerNorm" in name):
            param.requires_grad_(True)
    model.lora_config = {"rank": rank, "alpha": alpha, "targets": list(targets)}
    return adapted


def save_adapter(model: PreTrainedModel, path: str, base_model: str, extra: dict | None = None) -> dict[str, int]:
    """Write every trainable parameter (LoRA A/B, QA head, LayerNorms) as fp16 safetensors.

    Metadata records the format, LoRA rank/alpha and the base model name. Returns
    {tensor name: number of elements}.
    """
    from safetensors.torch import save_file

    config = getattr(model, "lora_config", None)
    if config is None:
        raise ValueError("model has no LoRA adapters (call inject_lora first)")
    tensors = {
        name: param.detach().to("cpu").half().contiguous()
        for name, param in model.named_parameters()
        if param.requires_grad
    }
    metadata = {
        "format": ADAPTER_FORMAT,
        "rank": str(config["rank"]),
        "alpha": str(config["alpha"]),
        "targets": json.dumps(config["targets"]),
        "base_model": base_model,
    }
    for key, value in (extra or {}).items():
        metadata[key] = value if isinstance(value, str) else json.dumps(value)
    save_file(tensors, path, metadata=metadata)
    return {name: tensor.numel() for name, tensor in tensors.items()}


def read_adapter_metadata(path: str) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(path, framework="pt") as handle:
        return dict(handle.metadata() or {})


def merge_adapter(model: PreTrainedModel, path: str) -> None:
    """Add scale * B @ A to each adapted weight and copy the other saved parameters in place."""
    import torch
    from safetensors.torch import load_file

    metadata = read_adapter_metadata(path)
    if metadata.get("format") != ADAPTER_FORMAT:
        raise ValueError(f"{path}: not a {ADAPTER_FORMAT} adapter file")
    scale = float(metadata["alpha"]) / int(metadata["rank"])
    tensors = load_file(path)
    modules = dict(model.named_modules())
    params = dict(model.named_parameters())
    with torch.no_grad():
        for key, tensor in tensors.items():
            if key.endswith(".lora_B"):
                continue
            if key.endswith(".lora_A"):
                name = key[: -len(".lora_A")]
                weight = modules[name].weight
                delta = tensors[name + ".lora_B"].float() @ tensor.float()
                weight += (scale * delta).to(weight.dtype)
            else:
                if key not in params:
                    raise KeyError(f"{path}: parameter {key!r} does not exist in the base model")
                params[key].copy_(tensor.to(params[key].dtype))


# --------------------------------------------------------------------------- span search


@dataclass(frozen=True)
class SpanCandidate:
    """An answer span; passage[start:end] (character offsets) is the answer text."""

    passage_index: int
    start: int
    end: int
    score: float  # start_logit + end_logit
    null_score: float  # CLS start + end logit of the window the span came from


_OPENERS = {"(": ")", "[": "]", "{": "}"}
_CLOSERS = {v: k for k, v in _OPENERS.items()}
_EDGE_PUNCT = ",;:!?"


def _trim_span(text: str, start: int, end: int) -> tuple[int, int]:
    """Shrink [start, end) past whitespace, separators and unbalanced brackets/quotes."""
    original = (start, end)
    while start < end:
        first, last, span = text[start], text[end - 1], text[start:end]
        if first.isspace() or first in _EDGE_PUNCT or first == ".":
            start += 1
        elif last.isspace() or last in _EDGE_PUNCT:
            end -= 1
        # keep the final dot of abbreviations such as "U.S." or "a.m."
        elif last == "." and not (end - start >= 3 and text[end - 3] == "."):
            end -= 1
        elif first in _OPENERS and _OPENERS[first] not in span:
            start += 1
        elif last in _CLOSERS and _CLOSERS[last] not in span:
            end -= 1
        elif first == '"' and span.count('"') % 2 == 1:
            start += 1
        elif last == '"' and span.count('"') % 2 == 1:
            end -= 1
        else:
            return start, end
    return original  # a span made only of punctuation is left as the model chose it


def _sentence_numbers(passages: Sequence[str], window_passage, offsets) -> np.ndarray:
    """The number of the sentence of its passage that each token of each window starts in."""
    starts = [np.array([start for start, _ in sentence_spans(passage)]) for passage in passages]
    return np.stack([np.searchsorted(starts[passage], offsets[window, :, 0], side="right")
                     for window, passage in enumerate(window_passage)])


class SpanExtractor:
    """Best answer spans of an extractive QA model for one question over several passages."""

    def __init__(self, tokenizer, model, max_length: int = 256, stride: int = 64, max_answer_tokens: int = 30):
        self.tokenizer = tokenizer
        self.model = model
        self.max_length = max_length
        self.stride = stride
        self.max_answer_tokens = max_answer_tokens
        self._input_names = [n for n in tokenizer.model_input_names if n in ("input_ids", "token_type_ids", "attention_mask")]
        self._forward = model

    def logits(self, question: str, passages: Sequence[str]):
        """Tokenise into windows and run one forward pass.

        Returns (encoding, start_logits, end_logits) with logits as float32 numpy (windows x tokens).
        """
        import torch

        encoding, inputs = self._inputs(question, passages)
        with torch.inference_mode():
            output = self._forward(**inputs)
        return encoding, output["start_logits"].float().numpy(), output["end_logits"].float().numpy()

    def trace(self) -> None:
        """Answer with a frozen trace of the model from now on (qa/traced.py). It is traced on two
        passages of different lengths, so that the trace keeps the padding mask's arithmetic."""
        from .traced import frozen_trace

        example = self._inputs("Which passage is the reader traced on?",
                               ["The reader is traced on this passage.", "And on this one, which is a little longer."])[1]
        self._forward = frozen_trace(self.model, kwargs=example)

    def _inputs(self, question: str, passages: Sequence[str]):
        """(the tokenizer's encoding of the question against each passage's windows, the model's input tensors)."""
        import torch

        encoding = self.tokenizer(
            [question] * len(passages),
            list(passages),
            truncation="only_second",
            max_length=self.max_length,
            stride=self.stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
            padding=True,
            # A few fixed lengths instead of one per input: torch's CPU kernels cache per shape,
            # and a new shape for every question made the server's memory creep up under load.
            pad_to_multiple_of=32,
            return_tensors="np",
        )
        return encoding, {name: torch.from_numpy(encoding[name]) for name in self._input_names if name in encoding}

    def extract(self, question: str, passages: Sequence[str], top_n: int = 5) -> list[SpanCandidate]:
        """Top-n answer spans over all passages, best first, unique per (passage, start, end)."""
        return self.extract_with_nulls(question, passages, top_n)[0]

    def extract_with_nulls(
        self, question: str, passages: Sequence[str], top_n: int = 5
    ) -> tuple[list[SpanCandidate], list[float]]:
        """Like extract, plus each passage's minimum null (CLS) score over its windows.

        The reader confidence margin used by the calibration is
        candidate.score - nulls[candidate.passage_index].
        """
        if not passages or top_n <= 0:
            return [], [float("nan")] * len(passages)
        encoding, start_logits, end_logits = self.logits(question, passages)
        n_windows, length = start_logits.shape
        window_passage = encoding["overflow_to_sample_mapping"]
        offsets = encoding["offset_mapping"]
        context = np.array([[sid == 1 for sid in encoding.sequence_ids(w)] for w in range(n_windows)])

        cls_id = self.tokenizer.cls_token_id
        cls_pos = (encoding["input_ids"] == cls_id).argmax(axis=1) if cls_id is not None else np.zeros(n_windows, int)
        rows = np.arange(n_windows)
        null_scores = start_logits[rows, cls_pos] + end_logits[rows, cls_pos]
        passage_nulls = np.full(len(passages), np.inf)
        np.minimum.at(passage_nulls, window_passage, null_scores)

        # scores[w, i, k] = start[w, i] + end[w, i + k] for spans of at most K tokens
        band = min(self.max_answer_tokens, length)
        end_index = np.arange(length)[:, None] + np.arange(band)[None, :]
        beyond = end_index >= length
        end_index = np.minimum(end_index, length - 1)
        start_masked = np.where(context, start_logits, -np.inf)
        end_masked = np.where(context, end_logits, -np.inf)
        scores = start_masked[:, :, None] + end_masked[:, end_index]
        scores[:, beyond] = -np.inf
        # A span stays inside one sentence: spans running on past a sentence's end were the reader's
        # most visible mistake, and almost no gold answer crosses one (docs/decisions.md).
        sentence = _sentence_numbers(passages, window_passage, offsets)
        scores[sentence[:, :, None] != sentence[:, end_index]] = -np.inf

        flat = scores.reshape(-1)
        n_valid = int(np.isfinite(flat).sum())
        wanted = min(n_valid, 4 * top_n + 16)  # slack for spans that collapse onto the same characters
        while True:
            top = np.argpartition(-flat, wanted - 1)[:wanted] if 0 < wanted < flat.size else np.arange(flat.size)
            top = top[np.argsort(-flat[top], kind="stable")]
            candidates = self._collect(top, flat, band, length, window_passage, offsets, null_scores, passages, top_n)
            if len(candidates) >= top_n or wanted >= n_valid:
                return candidates, [float(v) for v in passage_nulls]
            wanted = min(n_valid, wanted * 4)

    @staticmethod
    def _collect(top, flat, band, length, window_passage, offsets, null_scores, passages, top_n):
        seen: set[tuple[int, int, int]] = set()
        candidates: list[SpanCandidate] = []
        for index in top:
            score = flat[index]
            if not np.isfinite(score):
                break
            window, rest = divmod(int(index), length * band)
            first, width = divmod(rest, band)
            passage = int(window_passage[window])
            start, end = _trim_span(passages[passage], int(offsets[window, first, 0]), int(offsets[window, first + width, 1]))
            key = (passage, start, end)
            if key in seen:
                continue
            seen.add(key)
            candidates.append(SpanCandidate(passage, start, end, float(score), float(null_scores[window])))
            if len(candidates) == top_n:
                break
        return candidates
