"""All tunables in one pydantic-settings object (environment variables ``QA_*``).

Built only at the edges (CLI, ``create_app``) and passed down; nothing reads it globally.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .precision import Precision

DEFAULT_MODEL = "all-MiniLM-L6-v2"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="QA_", extra="ignore")

    # Where things live.
    index_dir: Path = Path("index")
    corpus_dir: Path = Path("corpus")

    # Embedding model: a local path, or a name sentence-transformers can load offline.
    model: str = DEFAULT_MODEL
    embed_batch_size: int = Field(32, ge=1)

    # A vector for every sentence as well as for every chunk: the strongest retrieval signal
    # here (README, "Measured results"), for about twice the embedding work of chunks alone.
    # Off builds a smaller index in about half the time; retrieval then fuses two signals.
    sentence_vectors: bool = True

    # Chunking, in the embedding model's own tokens.
    chunk_tokens: int = Field(200, ge=16)
    chunk_overlap: int = Field(32, ge=0)

    # Loading.
    max_file_bytes: int = Field(20_000_000, ge=1)

    # Retrieval.
    top_k: int = Field(5, ge=1, le=100)
    candidates: int = Field(50, ge=1, le=1000)
    fusion: Literal["rrf", "convex"] = "convex"
    # Convex fusion weights of the chunk vectors, the sentence vectors and the sentences' BM25;
    # the chunks' BM25 gets the rest. Chosen on SQuAD train articles (README, "Measured results").
    # The sentences' BM25 is off (0, and left out of RRF too): it won on SQuAD, whose questions
    # echo the words of their answer sentence, and lost on the news demo and SciFact.
    dense_weight: float = Field(0.2, ge=0.0, le=1.0)
    sentence_weight: float = Field(0.4, ge=0.0, le=1.0)
    sentence_lexical_weight: float = Field(0.0, ge=0.0, le=1.0)
    rrf_k: int = Field(60, ge=1)

    # Reading.
    # Which shipped reader (a folder under qa/weights) reads; reader_model replaces it with one of your own.
    reader: str = "previous"
    reader_model: str | None = None  # a local Hugging Face extractive-QA model directory
    reader_passages: int = Field(3, ge=1, le=20)
    # Read the best passage alone first and stop there when its answer clears abstain_below;
    # the other passages are read only when it does not (README, "Speed").
    reader_early_stop: bool = True
    # When the reader has read several passages, order them by retrieval score plus the reader's
    # best confidence in each: the passage that answers comes first (README, "Measured results").
    reader_rerank: bool = True
    reader_int8: bool = False  # ~1.5x faster reading, but measured 6 F1 points lower on SQuAD
    alternatives: int = Field(3, ge=0, le=20)
    abstain_below: float = Field(0.5, ge=0.0, le=1.0)  # confidence is P(right): abstain when below even odds
    torch_threads: int = Field(0, ge=0)  # 0: leave torch's default
    # Float type of both models; "auto" is bfloat16 on CPUs with native bfloat16 instructions.
    precision: Precision = "auto"
    # Questions encoded and read at once; more wait their turn. Torch already spreads one over
    # the cores, so running more only adds memory (activations) and contention.
    concurrent_reads: int = Field(2, ge=1, le=64)

    # Limits on requests (used by the CLI and the API alike).
    max_question_chars: int = Field(500, ge=1)
    max_body_bytes: int = Field(5_000_000, ge=1024)
    max_documents_per_request: int = Field(100, ge=1)

    # The HTTP service.
    api_key: SecretStr | None = None  # when set, writes need it (header X-API-Key)
    log_level: Literal["critical", "error", "warning", "info", "debug", "trace"] = "warning"  # of `qa serve`
    read_only: bool = False
    cors_origins: list[str] = []  # closed by default

    @model_validator(mode="after")
    def _fusion_weights_leave_room_for_bm25(self) -> Settings:
        if self.dense_weight + self.sentence_weight + self.sentence_lexical_weight > 1:
            raise ValueError("dense_weight + sentence_weight + sentence_lexical_weight must be at most 1 "
                             "(chunk BM25 gets the rest)")
        return self
