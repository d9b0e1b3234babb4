"""Readers pick answer spans out of passages and say how likely each is to be right."""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence

from .embedding import resolve_model_path
from .errors import ReaderUnavailable
from .precision import Precision, torch_dtype
from .settings import DEFAULT_MODEL, Settings

WEIGHTS = Path(__file__).parent / "weights"
DEFAULT_ADAPTER = WEIGHTS / "reader-adapter.safetensors"
DEFAULT_CALIBRATION = WEIGHTS / "reader-calibration.json"


@dataclass(frozen=True)
class SpanGuess:
    """``passages[passage_index][start:end]`` is the answer; ``confidence`` is P(right)."""
    passage_index: int
    start: int
    end: int
    confidence: float


class Reader(Protocol):
    def read(self, question: str, passages: Sequence[str], top_n: int) -> list[SpanGuess]:
        """Up to ``top_n`` guesses over all passages, most confident first."""
        ...


@dataclass(frozen=True)
class Calibration:
    """Platt scaling of the reader's margin (span score minus no-answer score)."""
    a: float = 1.0
    b: float = 0.0

    @classmethod
    def load(cls, path: Path) -> Calibration:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(float(data["a"]), float(data["b"]))

    def __call__(self, margin: float) -> float:
        z = self.a * margin + self.b
        return 1.0 / (1.0 + math.exp(-z)) if z > -700 else 0.0


class ExtractiveReader:
    """A Hugging Face extractive-QA model (ours: MiniLM with a trained adapter), loaded on first use.

    ``model_dir=None`` means the project's reader: the shipped all-MiniLM-L6-v2 plus the
    adapter and calibration in ``qa/weights``. A user's own QA model directory has no fitted
    calibration, so its confidence is the logistic of the raw margin.
    """

    def __init__(self, model_dir: str | None = None, *, quantize: bool = False, torch_threads: int = 0,
                 precision: Precision = "auto"):
        self.model_dir = model_dir
        self.quantize = quantize
        self.torch_threads = torch_threads
        self.precision = precision
        self.calibration = Calibration()
        self._extractor = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> ExtractiveReader:
        return cls(settings.reader_model, quantize=settings.reader_int8,
                   torch_threads=settings.torch_threads, precision=settings.precision)

    @property
    def extractor(self):
        with self._lock:
            if self._extractor is None:
                self._extractor = self._load()
        return self._extractor

    def _load(self):
        import torch

        from .span_model import SpanExtractor, load_qa_model

        if self.torch_threads:
            torch.set_num_threads(self.torch_threads)
        if self.model_dir:
            directory = Path(self.model_dir).expanduser()
            if not directory.is_dir():
                raise ReaderUnavailable(f"reader model directory {directory} does not exist")
            tokenizer, model = load_qa_model(str(directory))
        else:
            if not DEFAULT_ADAPTER.is_file() or not DEFAULT_CALIBRATION.is_file():
                raise ReaderUnavailable(f"the reader weights are missing from {WEIGHTS}; reinstall, "
                                        "or train them with `python -m qa.reader_training`")
            self.calibration = Calibration.load(DEFAULT_CALIBRATION)
            tokenizer, model = load_qa_model(resolve_model_path(DEFAULT_MODEL), str(DEFAULT_ADAPTER))
        # int8 weights replace the float type: quantisation works on float32 linears.
        model = _quantized(model) if self.quantize else model.to(torch_dtype(self.precision))
        return SpanExtractor(tokenizer, model)

    def read(self, question: str, passages: Sequence[str], top_n: int) -> list[SpanGuess]:
        candidates, nulls = self.extractor.extract_with_nulls(question, passages, top_n)
        guesses = [SpanGuess(c.passage_index, c.start, c.end,
                             self.calibration(c.score - nulls[c.passage_index]))
                   for c in candidates]
        return sorted(guesses, key=lambda g: -g.confidence)


def _quantized(model):
    """int8 weights for the linear layers: about 1.5x faster on this CPU, but on SQuAD test
    articles F1 with the gold paragraph fell from 62.9 to 56.9 (600 questions), so it is opt-in."""
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
