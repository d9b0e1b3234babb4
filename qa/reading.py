"""Readers pick answer spans out of passages and say how likely each is to be right."""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence

from .calibration import sigmoid
from .embedding import resolve_model_path
from .errors import ReaderUnavailable
from .precision import Precision, int8_linears, torch_dtype
from .settings import DEFAULT_MODEL, Settings
from .span_model import ADAPTER_FILE, CALIBRATION_FILE, REPORT_FILE

WEIGHTS = Path(__file__).parent / "weights"


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
        return sigmoid(self.a * margin + self.b)


def shipped_readers() -> list[str]:
    """Names of the readers in ``qa/weights`` (each a folder of adapter, calibration and training report)."""
    return sorted(p.parent.name for p in WEIGHTS.glob(f"*/{REPORT_FILE}"))


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file, read in blocks: what training records beside weights and loading checks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verified_weights(name: str) -> Path:
    """The folder of shipped reader ``name``, after checking its files against the hashes its report records.

    A weight file that was truncated or replaced would otherwise load and answer wrongly without a word.
    """
    folder = WEIGHTS / name
    report_path = folder / REPORT_FILE
    if not report_path.is_file():
        raise ReaderUnavailable(f"no shipped reader named {name!r} (shipped: {', '.join(shipped_readers()) or 'none'})")
    recorded = json.loads(report_path.read_text(encoding="utf-8")).get("files", {})
    for file_name in (ADAPTER_FILE, CALIBRATION_FILE):
        path = folder / file_name
        if not path.is_file():
            raise ReaderUnavailable(f"{path} is missing; reinstall, or train it with `python -m qa.training`")
        if file_sha256(path) != recorded.get(file_name):
            raise ReaderUnavailable(f"{path} does not match the sha256 recorded in {report_path}; "
                                    "the file is damaged or was replaced, reinstall it")
    return folder


class ExtractiveReader:
    """A Hugging Face extractive-QA model (ours: MiniLM with a trained adapter), loaded on first use.

    ``model_dir=None`` means one of the project's readers: the shipped all-MiniLM-L6-v2 plus the
    adapter and calibration in ``qa/weights/<shipped>``. A user's own QA model directory has no fitted
    calibration, so its confidence is the logistic of the raw margin.
    """

    def __init__(self, model_dir: str | None = None, *, shipped: str = "previous", quantize: bool = False,
                 torch_threads: int = 0, precision: Precision = "auto", traced: bool = True):
        self.model_dir = model_dir
        self.shipped = shipped
        self.quantize = quantize
        self.torch_threads = torch_threads
        self.precision = precision
        self.traced = traced
        self.calibration = Calibration()
        self._extractor = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> ExtractiveReader:
        return cls(settings.reader_model, shipped=settings.reader, quantize=settings.reader_int8,
                   torch_threads=settings.torch_threads, precision=settings.precision,
                   traced=settings.traced_models)

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
            folder = verified_weights(self.shipped)
            self.calibration = Calibration.load(folder / CALIBRATION_FILE)
            tokenizer, model = load_qa_model(resolve_model_path(DEFAULT_MODEL), str(folder / ADAPTER_FILE))
        # int8 weights replace the float type: quantisation works on float32 linears.
        model = int8_linears(model) if self.quantize else model.to(torch_dtype(self.precision))
        extractor = SpanExtractor(tokenizer, model)
        if self.traced:
            extractor.trace()
        return extractor

    def read(self, question: str, passages: Sequence[str], top_n: int) -> list[SpanGuess]:
        candidates, nulls = self.extractor.extract_with_nulls(question, passages, top_n)
        guesses = [SpanGuess(c.passage_index, c.start, c.end,
                             self.calibration(c.score - nulls[c.passage_index]))
                   for c in candidates]
        return sorted(guesses, key=lambda g: -g.confidence)
