"""All tunables in one pydantic-settings object (environment variables ``QA_*``).

Built only at the edges (CLI, ``create_app``) and passed down; nothing reads it globally.
Every field carries a description: ``qa.settings_doc`` renders them as the README's
configuration table, and a test keeps the two in step.
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

    # Where the index lives.
    index_dir: Path = Field(Path("index"), description="Directory of the index that is built and served.")
    # One Milvus can serve several stateless API processes; the local index serves the processes of one machine.
    backend: Literal["local", "milvus"] = Field("local", description=(
        "Where the index lives: `local` (`QA_INDEX_DIR`) or `milvus` (`QA_MILVUS_URI`, the `milvus` extra)."))
    milvus_uri: str = Field("index/milvus.db", description=(
        "A Milvus Lite file (one process at a time) or `http://HOST:19530` (a server or cluster)."))
    milvus_collection: str = Field("qa", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,200}$", description=(
        "Prefix of this index's Milvus collections; several indexes can share one Milvus."))
    milvus_token: SecretStr | None = Field(None, description=(
        "Milvus token (`user:password` or an API key); never printed."))
    milvus_timeout_s: float = Field(10.0, gt=0, description=(
        "Seconds Milvus may take to connect or answer a call before a 503."))

    # Embedding.
    model: str = Field(DEFAULT_MODEL, description=(
        "Embedding model (a path, or a name loadable offline); a change needs `qa index --rebuild`."))
    embed_batch_size: int = Field(32, ge=1, description="Texts embedded per batch while indexing.")
    # Sentence vectors are the strongest retrieval signal (docs/decisions.md); they double the
    # embedding work of an index.
    sentence_vectors: bool = Field(True, description=(
        "Embed every sentence as well as every chunk; `false` indexes in half the time, with lower recall."))

    # Indexing on Ray (qa/ray_embedding.py); questions are always embedded in process.
    embed_workers: int = Field(0, ge=0, description=(
        "Ray workers that embed while indexing (the `ray` extra); 0 embeds in this process."))
    ray_address: str | None = Field(None, description=(
        "Ray cluster of those workers (`ray://HOST:10001`, `HOST:6379`, `auto`); unset starts one here."))

    # Chunking, in the embedding model's own tokens.
    chunk_tokens: int = Field(200, ge=16, description="Chunk length, in the embedding model's tokens.")
    chunk_overlap: int = Field(32, ge=0, description="Tokens shared by neighbouring chunks.")

    # Loading.
    max_file_bytes: int = Field(20_000_000, ge=1, description="Corpus files larger than this are skipped.")

    # Retrieval.
    top_k: int = Field(5, ge=1, le=100, description="Passages returned with an answer.")
    candidates: int = Field(50, ge=1, le=1000, description="Candidates each retrieval signal passes to the fusion.")
    fusion: Literal["rrf", "convex"] = Field("convex", description=(
        "Fusion of the signals: convex combination of min-max-normalised scores, or reciprocal rank."))
    # The weights were chosen on SQuAD train articles only (docs/decisions.md).
    dense_weight: float = Field(0.2, ge=0.0, le=1.0, description=(
        "Convex weight of the chunk vectors; chunk BM25 gets what the three weights leave."))
    sentence_weight: float = Field(0.4, ge=0.0, le=1.0, description=(
        "Convex weight of a chunk's best sentence vector."))
    # Off because it only helps questions that echo their answer sentence, as SQuAD's do
    # (docs/decisions.md); at 0 it is left out of RRF too.
    sentence_lexical_weight: float = Field(0.0, ge=0.0, le=1.0, description=(
        "Convex weight of a chunk's best sentence BM25 score (built in memory when above 0)."))
    rrf_k: int = Field(60, ge=1, description="The constant k of reciprocal rank fusion.")

    # Reading.
    reader: str = Field("fast", description=(
        "Shipped reader: `fast`, `accurate` or `previous` (a folder under `qa/weights`)."))
    reader_model: str | None = Field(None, description=(
        "A local Hugging Face extractive-QA model directory to read with instead."))
    reader_passages: int = Field(3, ge=1, le=20, description="Passages the reader reads at most.")
    # Reading one passage is most of an answer's time, and a confident answer in the best
    # passage is more often right than a rival from a lower-ranked one (docs/decisions.md).
    reader_early_stop: bool = Field(True, description=(
        "Stop after the best passage when its answer clears `QA_ABSTAIN_BELOW`."))
    # Retrieval often ranks a neighbouring paragraph first; the reader knows which one answers.
    reader_rerank: bool = Field(True, description=(
        "Order the passages read by retrieval score plus the reader's confidence (answers unchanged)."))
    reader_int8: bool = Field(False, description=(
        "int8 weights for the reader's linear layers (docs/decisions.md)."))
    alternatives: int = Field(3, ge=0, le=20, description="Other answers returned beside the best one.")
    # Confidence is a calibrated P(right), so 0.5 means abstaining below even odds.
    abstain_below: float = Field(0.5, ge=0.0, le=1.0, description=(
        "Abstain below this confidence (the calibrated probability of being right)."))
    # A share of the score range, so that it means the same under either fusion.
    recency_weight: float = Field(0.3, ge=0.0, le=1.0, description=(
        "Share of the score range the newest candidate gains over the oldest, for \"latest\" questions."))
    prefer_recent: bool = Field(False, description=(
        "Prefer newer documents for every question."))
    torch_threads: int = Field(0, ge=0, description=(
        "Threads torch uses; 0 shares the cores: all for a question alone, fewer each when several are answered."))
    precision: Precision = Field("auto", description=(
        "Float type of both models; `auto` is bfloat16 where the CPU has AVX-512 BF16 or AMX."))
    # A question is encoded alone, so reading the weights is much of its time (docs/decisions.md).
    query_int8: bool | None = Field(None, description=(
        "int8 weights for the question encoder; unset: where the models run in float32."))
    # Much of one small forward pass is Python around the matrix products (docs/decisions.md).
    traced_models: bool = Field(True, description=(
        "Answer with frozen TorchScript traces of both models (about a second more to load)."))
    # Torch already spreads one question over the cores, so more at once only adds memory
    # (activations) and contention.
    concurrent_reads: int = Field(2, ge=1, le=64, description=(
        "Questions read at once; more wait."))

    # Limits on requests (used by the CLI and the API alike).
    max_question_chars: int = Field(500, ge=1, description="Longest question accepted.")
    max_body_bytes: int = Field(5_000_000, ge=1024, description="Largest HTTP request body accepted.")
    max_documents_per_request: int = Field(100, ge=1, description="Most documents one `POST /api/documents` may carry.")

    # The HTTP service.
    api_key: SecretStr | None = Field(None, description=(
        "When set, writes need it in `X-API-Key`; never printed."))
    log_level: Literal["critical", "error", "warning", "info", "debug", "trace"] = Field(
        "warning", description="Log level of `qa serve`.")
    read_only: bool = Field(False, description="Refuse every write to the index over HTTP.")
    cors_origins: list[str] = Field([], description=(
        "CORS origins, a JSON list; empty keeps CORS closed."))

    @model_validator(mode="after")
    def _fusion_weights_leave_room_for_bm25(self) -> Settings:
        if self.dense_weight + self.sentence_weight + self.sentence_lexical_weight > 1:
            raise ValueError("dense_weight + sentence_weight + sentence_lexical_weight must be at most 1 "
                             "(chunk BM25 gets the rest)")
        return self

    @model_validator(mode="after")
    def _milvus_has_no_sentence_bm25(self) -> Settings:
        if self.backend == "milvus" and self.sentence_lexical_weight > 0:
            raise ValueError("the milvus backend has no sentence BM25 signal: set sentence_lexical_weight to 0")
        return self
