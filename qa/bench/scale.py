"""How an index's costs grow with the corpus: ``qa bench scale``.

Synthetic documents with deterministic stand-in vectors: storage, BM25 and fusion are the real
ones; there is no question encoder and no reader (their cost does not depend on the corpus
size). For each size it measures a one-document write and retrieval p50/p95; for the local
index also the recall@20 of the approximate vector search against the exhaustive one, the
memory of an open index and its size on disk (Milvus's collections use exhaustive FLAT
indexes, and its memory is the server's). Prints a table, writes JSON and a plot of cost
against corpus size.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..chunking import Chunk
from ..documents import Document
from ..retrieval import FusionConfig, Retriever
from ..settings import Settings
from ..store import IndexConfig, IndexedDocument, IndexedSentence
from ..store.backends import Backend, IndexLocation, LocalIndex, MilvusAddress, index_location
from ..store.local_search import RESCORE_SENTENCES_FROM
from ..store.vectors import APPROXIMATE_FROM, VectorIndex
from .indexing import print_table, write_json

DIMENSION = 384  # that of the shipped embedding model
MAX_CHUNKS = 1_000_000
DEFAULT_SIZES = (10_000, 100_000)
_WORDS = 20_000


class StandInVectors:
    """Deterministic unit vectors in clusters of clusters, as a corpus's embeddings group by
    topic and then by subtopic (uniform random vectors would have no near neighbours at all)."""

    def __init__(self, dimension: int, seed: int = 0, topics: int = 50, subtopics: int = 40):
        rng = np.random.default_rng(seed)
        centres = rng.standard_normal((topics, dimension), dtype=np.float32)
        self.subtopics = np.repeat(centres, subtopics, axis=0) + 0.8 * rng.standard_normal(
            (topics * subtopics, dimension), dtype=np.float32)

    def around(self, subtopics: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One unit vector near each of ``subtopics`` (row numbers of ``self.subtopics``)."""
        rows = self.subtopics[subtopics] + 0.8 * rng.standard_normal((len(subtopics), self.subtopics.shape[1]),
                                                                     dtype=np.float32)
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def clustered_unit_vectors(count: int, dimension: int, seed: int = 0) -> np.ndarray:
    """``count`` stand-in vectors, each around a subtopic drawn at random."""
    stand_in = StandInVectors(dimension, seed)
    rng = np.random.default_rng(seed + 1)
    return stand_in.around(rng.integers(0, len(stand_in.subtopics), count), rng)


@dataclass(frozen=True)
class Question:
    text: str
    vector: np.ndarray


class SyntheticCorpus:
    """Documents of one or two chunks of three to six sentences, words drawn Zipf-like from a
    made-up vocabulary; document ``n`` is the same on every run."""

    def __init__(self, dimension: int = DIMENSION, seed: int = 0):
        self.seed = seed
        self.vectors = StandInVectors(dimension, seed)
        rng = np.random.default_rng(seed)
        letters = np.array(list("bcdfghjklmnprstvz")), np.array(list("aeiou"))
        self.vocabulary = ["".join(rng.choice(letters[k % 2]) for k in range(int(rng.integers(4, 9))))
                           for _ in range(_WORDS)]
        weights = np.cumsum(1.0 / np.arange(1, _WORDS + 1))
        self._word_cdf = weights / weights[-1]

    def document(self, number: int, doc_id: str | None = None) -> IndexedDocument:
        rng = np.random.default_rng([self.seed, number])
        subtopic = int(rng.integers(0, len(self.vectors.subtopics)))
        doc_id = doc_id or f"doc-{number:07d}"
        texts, sentences = [], []
        for chunk_index in range(int(rng.integers(1, 3))):
            spans, text = [], ""
            for _ in range(int(rng.integers(3, 7))):
                words = self._words(int(rng.integers(8, 17)), rng)
                sentence = " ".join(self.vocabulary[w] for w in words).capitalize() + "."
                text += (" " if text else "") + sentence
                spans.append(IndexedSentence(chunk_index, len(text) - len(sentence), len(text)))
            texts.append(text)
            sentences += spans
        chunks, start = [], 0
        for ordinal, text in enumerate(texts):
            chunks.append(Chunk(doc_id, ordinal, start, start + len(text), text))
            start += len(text) + 2
        document = Document(id=doc_id, title=f"Synthetic document {number}", text="\n\n".join(texts),
                            source="synthetic")
        return IndexedDocument(document, chunks, self.vectors.around(np.full(len(chunks), subtopic), rng),
                               sentences, self.vectors.around(np.full(len(sentences), subtopic), rng))

    def _words(self, count: int, rng: np.random.Generator) -> np.ndarray:
        """Word numbers drawn with weights 1/rank (Zipf), by inverting the cumulative weights."""
        return np.minimum(np.searchsorted(self._word_cdf, rng.random(count)), _WORDS - 1)

    def question(self, number: int) -> Question:
        """Five words of one sentence of document ``number``, and a vector near that sentence's."""
        item = self.document(number)
        rng = np.random.default_rng([self.seed, number, 1])
        pick = int(rng.integers(0, len(item.sentences)))
        span = item.sentences[pick]
        words = item.chunks[span.chunk_index].text[span.start:span.end].rstrip(".").split()
        text = " ".join(rng.choice(words, min(5, len(words)), replace=False))
        vector = item.sentence_vectors[pick] + 0.05 * rng.standard_normal(len(item.sentence_vectors[pick]))
        return Question(text, (vector / np.linalg.norm(vector)).astype(np.float32))


class StandInEncoder:
    """Answers ``encode_query`` with the vector prepared for each question: no model runs."""

    def __init__(self, questions: list[Question]):
        self._vectors = {q.text: q.vector for q in questions}

    def encode_query(self, question: str) -> np.ndarray:
        return self._vectors[question]


# Run in a fresh interpreter: in the bench's own, memory freed by the build is reused and hides the cost.
_OPEN_MEMORY = """
import os, sys
import bm25s, Stemmer
from qa.store import IndexReader
from qa.store.vectors import _faiss
_faiss()
def resident():
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
before = resident()
reader = IndexReader.open(sys.argv[1])
reader.wait_for_approximate()
print((resident() - before) / 2**20)
"""


def _open_index_memory_mb(index_dir: Path) -> float:
    """Resident memory an opened index adds, approximate vector indexes included."""
    package_root = str(Path(__file__).resolve().parents[2])  # so that the child imports this same qa
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", _OPEN_MEMORY, str(index_dir)], capture_output=True, text=True,
                          check=True, env=env)
    return float(done.stdout.strip().splitlines()[-1])


def _percentile_ms(seconds: list[float], q: float) -> float:
    return round(float(np.percentile(seconds, q)) * 1000, 2)


def _build(corpus: SyntheticCorpus, location: IndexLocation, config: IndexConfig, chunks: int) -> tuple[int, int]:
    """Index documents until there are ``chunks`` chunks (the last document may be cut short)."""
    written = documents = 0
    with location.writer(config, rebuild=True) as writer:
        while written < chunks:
            item = corpus.document(documents)
            keep = min(len(item.chunks), chunks - written)
            if keep < len(item.chunks):
                sentences = [s for s in item.sentences if s.chunk_index < keep]
                item = IndexedDocument(item.document, item.chunks[:keep], item.vectors[:keep], sentences,
                                       item.sentence_vectors[:len(sentences)])
            writer.upsert(item)
            written += keep
            documents += 1
        writer.commit()
    return documents, written


@dataclass(frozen=True)
class Target:
    """Where the indexes are measured: local folders under ``scratch``, or collections in a Milvus
    (``milvus_uri``; a Milvus Lite file under ``scratch`` when None)."""
    backend: Backend
    scratch: Path
    milvus_uri: str | None = None

    def location(self, chunks: int) -> IndexLocation:
        uri = self.milvus_uri or str(self.scratch / f"milvus-{chunks}.db")
        return index_location(self.backend, index_dir=self.scratch / f"index-{chunks}",
                              milvus=MilvusAddress(uri, collection=f"scale_{chunks}", timeout_s=600.0))


def _recall_at_20(index: VectorIndex, questions: list[Question]) -> float:
    if not index.approximate:
        index.build_approximate()
    found = [len(set(index.search(q.vector, 20)[1].tolist())
                 & set(index.search(q.vector, 20, exact=True)[1].tolist())) for q in questions]
    return round(sum(found) / (20 * len(questions)), 4)


def bench_size(chunks: int, target: Target, *, writes: int, questions: int, settings: Settings) -> dict:
    corpus = SyntheticCorpus()
    config = IndexConfig("stand-in", DIMENSION, settings.chunk_tokens, settings.chunk_overlap)
    location = target.location(chunks)
    started = time.perf_counter()
    documents, chunks = _build(corpus, location, config, chunks)
    build_s = time.perf_counter() - started

    write_s = []
    for n in range(writes):
        item = corpus.document(documents + n)
        started = time.perf_counter()
        with location.writer(config) as writer:
            writer.upsert(item)
            writer.commit()
        write_s.append(time.perf_counter() - started)

    local = isinstance(location, LocalIndex)
    memory_mb = _open_index_memory_mb(location.index_dir) if local else None
    started = time.perf_counter()
    index = location.open()
    if local:
        index.wait_for_approximate()
    open_s = time.perf_counter() - started
    asked = [corpus.question(int(n)) for n in np.random.default_rng(7).integers(0, documents, questions)]
    fusion = FusionConfig(settings.fusion, settings.dense_weight, settings.sentence_weight,
                          settings.sentence_lexical_weight, settings.rrf_k, settings.candidates)
    retriever = Retriever(index, StandInEncoder(asked), fusion)
    for question in asked[:5]:  # first searches pay for lazy set-up
        retriever.search(question.text, settings.top_k)
    search_s = []
    for question in asked:
        started = time.perf_counter()
        retriever.search(question.text, settings.top_k)
        search_s.append(time.perf_counter() - started)
    result = {
        "backend": target.backend,
        "chunks": chunks, "documents": documents + writes, "sentences": index.manifest.sentences,
        "build_s": round(build_s, 2),
        "one_document_write_p50_s": round(statistics.median(write_s), 3),
        "one_document_write_max_s": round(max(write_s), 3),
        "open_s": round(open_s, 2),
        "retrieval_p50_ms": _percentile_ms(search_s, 50), "retrieval_p95_ms": _percentile_ms(search_s, 95),
        "approximate_search_in_use": {"chunks": False, "sentences": False},
        "recall_at_20": None, "open_index_memory_mb": None,
        "disk_mb": _disk_mb(Path(location.address.uri)) if not local and location.address.is_lite_path else None,
        "writes": writes, "questions": questions,
    }
    if local:
        result.update({
            "approximate_search_in_use": {"chunks": index.dense.approximate, "sentences": index.sentences.approximate},
            "recall_at_20": {"chunks": _recall_at_20(index.dense, asked[:50]),
                             # None where only the candidates' sentences are scored: never searched
                             "sentences": _recall_at_20(index.sentences, asked[:50])
                             if index.sentences.size < RESCORE_SENTENCES_FROM else None},
            "open_index_memory_mb": round(memory_mb, 1),
            "disk_mb": round(index.size_on_disk() / 2**20, 1)})
        index.close()
    else:
        _drop(location)
    return result


def _disk_mb(path: Path) -> float | None:
    """What a Milvus Lite file (a folder of that name) holds."""
    files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path] if path.is_file() else []
    return round(sum(p.stat().st_size for p in files) / 2**20, 1) if files else None


def _drop(location) -> None:
    """The bench's collections go once measured: a Milvus server may hold real indexes beside them."""
    for name in location.names.all():
        location.milvus.drop_collection(name)


def print_results(results: list[dict]) -> None:
    for r in results:
        rows = [
            ("documents / sentences", f"{r['documents']:,} / {r['sentences']:,}"),
            ("build, one commit (s)", f"{r['build_s']:.2f}"),
            (f"one-document write p50 of {r['writes']} (s)", f"{r['one_document_write_p50_s']:.3f}"),
            ("open + approximate build (s)", f"{r['open_s']:.2f}"),
            (f"retrieval p50 of {r['questions']} (ms)", f"{r['retrieval_p50_ms']:.1f}"),
            ("retrieval p95 (ms)", f"{r['retrieval_p95_ms']:.1f}"),
        ]
        if r["recall_at_20"] is None:
            rows.append(("vector search", "exhaustive (FLAT)"))
        else:
            in_use = ", ".join(k for k, v in r["approximate_search_in_use"].items() if v) or "neither"
            rows += [("approximate search in use for", in_use),
                     ("recall@20, chunk vectors", f"{r['recall_at_20']['chunks']:.4f}"),
                     ("recall@20, sentence vectors", "not searched: candidates rescored"
                      if r["recall_at_20"]["sentences"] is None else f"{r['recall_at_20']['sentences']:.4f}"),
                     ("open index memory (MB)", f"{r['open_index_memory_mb']:.0f}")]
        if r["disk_mb"] is not None:
            rows.append(("index on disk (MB)", f"{r['disk_mb']:.0f}"))
        print_table(f"Scale, {r['backend']} backend: {r['chunks']:,} chunks", rows)
        print()


def plot(results: list[dict], path: Path) -> None:
    """Cost against corpus size: write, retrieval, memory and disk, each on log-log axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [r["chunks"] for r in results]
    panels = [("one-document write p50 (s)", ["one_document_write_p50_s"]),
              ("retrieval (ms)", ["retrieval_p50_ms", "retrieval_p95_ms"]),
              ("open index memory (MB)", ["open_index_memory_mb"]), ("index on disk (MB)", ["disk_mb"])]
    figure, axes = plt.subplots(1, len(panels), figsize=(16, 3.8), constrained_layout=True)
    for axis, (title, keys) in zip(axes, panels):
        for key in keys:
            if all(r[key] is not None for r in results):
                axis.plot(sizes, [r[key] for r in results], marker="o", label=key.rsplit("_", 2)[-2])
        axis.set(title=title, xlabel="chunks", xscale="log", yscale="log")
        axis.grid(True, which="both", alpha=0.3)
        if len(keys) > 1:
            axis.legend()
    figure.suptitle(f"{results[0]['backend'].capitalize()} index cost against corpus size "
                    "(stand-in vectors, no encoder or reader)")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    print(f"wrote {path}")


def check_size(chunks: int) -> int:
    if not 100 <= chunks <= MAX_CHUNKS:
        raise ValueError(f"a size is a number of chunks from 100 to {MAX_CHUNKS:,}, not {chunks:,}")
    return chunks


def check_counts(writes: int, questions: int) -> None:
    if writes < 1 or questions < 5:
        raise ValueError("at least 1 write and 5 questions per size are needed")


def run(sizes: Sequence[int] = DEFAULT_SIZES, *, writes: int = 5, questions: int = 200,
        out: Path = Path("bench-results/scale.json"), plot_path: Path = Path("bench-results/scale.png"),
        scratch: Path | None = None, backend: Backend = "local", milvus_uri: str | None = None) -> list[dict]:
    """Measure each size (chunks) in a scratch index, print the table, write the JSON and the plot."""
    for size in sizes:
        check_size(size)
    check_counts(writes, questions)
    settings = Settings()
    results = []
    with tempfile.TemporaryDirectory(dir=scratch) as folder:
        target = Target(backend, Path(folder), milvus_uri)
        for size in sorted(set(sizes)):
            results.append(bench_size(size, target, writes=writes, questions=questions, settings=settings))
    print_results(results)
    write_json(out, {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "dimension": DIMENSION,
                     "backend": backend, "approximate_from": APPROXIMATE_FROM,
                     "rescore_sentences_from": RESCORE_SENTENCES_FROM, "sizes": results})
    plot(results, plot_path)
    return results
