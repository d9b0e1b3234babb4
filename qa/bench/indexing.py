"""Benchmarks: measured, printed as a table and written as JSON; never asserted."""

from __future__ import annotations

import json
import platform
import resource
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from ..embedding import Embedder
from ..eval.questions import load_squad
from ..indexing import IndexReport, chunk_sentences, make_chunker, texts_to_embed, write_documents
from ..loaders import load_corpus
from ..settings import Settings


def print_table(title: str, rows: list[tuple[str, str]]) -> None:
    width = max(len(name) for name, _ in rows)
    print(title)
    print("-" * len(title))
    for name, value in rows:
        print(f"{name:<{width}}  {value:>14}")


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {path}")


def peak_memory_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_index(corpus: Path, out: Path, limit: int | None = None, writes: int = 5) -> dict:
    """Index ``corpus`` into a scratch directory, time ``writes`` one-document commits into it,
    then encode the same chunks and sentences bare."""
    settings = Settings()
    embedder = Embedder.from_settings(settings)
    embedder.encode(["warm up the model"])
    started = time.perf_counter()
    if corpus.suffix == ".json":
        documents = load_squad(corpus).documents
    else:
        documents = load_corpus(corpus, max_file_bytes=settings.max_file_bytes).documents
    documents = documents[:limit] if limit else documents
    load_s = time.perf_counter() - started

    with tempfile.TemporaryDirectory() as scratch:
        settings = settings.model_copy(update={"index_dir": Path(scratch)})
        report = IndexReport(seconds={"load": load_s})
        started = time.perf_counter()
        write_documents(documents, settings, embedder, report=report, rebuild=True, progress=False)
        pipeline_s = time.perf_counter() - started + load_s
        single_writes = [_one_document_write(settings, embedder, documents[n % len(documents)], n)
                         for n in range(writes if documents else 0)]

    chunker = make_chunker(settings, embedder)
    chunked = [(d, chunker.split(d)) for d in documents]
    sentences = [chunk_sentences(chunks, settings) for _, chunks in chunked]
    texts, sentence_texts = texts_to_embed(chunked, sentences)
    started = time.perf_counter()
    embedder.encode(texts + sentence_texts)
    bare_s = time.perf_counter() - started

    seconds = report.seconds
    result = {
        "corpus": str(corpus), "documents": len(documents), "chunks": report.chunks_embedded,
        "sentences": report.sentences_embedded,
        "model": settings.model, "chunk_tokens": settings.chunk_tokens,
        "sentence_vectors": settings.sentence_vectors,
        "seconds": {k: round(v, 3) for k, v in seconds.items()} | {"total": round(pipeline_s, 3)},
        "documents_per_s": round(len(documents) / pipeline_s, 1),
        "chunks_per_s": round(report.chunks_embedded / pipeline_s, 1),
        "bare_encode_s": round(bare_s, 3),
        "overhead_vs_bare_encode": round((pipeline_s - bare_s) / bare_s, 4),
        "one_document_writes": single_writes,
        "one_document_write_median_s": _median(single_writes, "total"),
        "peak_memory_mb": round(peak_memory_mb(), 1),
        "machine": f"{platform.machine()}, {__import__('os').cpu_count()} CPUs",
    }
    print_table(f"Indexing {corpus.name}", [
        ("documents", f"{result['documents']:,}"),
        ("chunks", f"{result['chunks']:,}"),
        ("sentences", f"{result['sentences']:,}"),
        *[(f"{stage} (s)", f"{value:.2f}") for stage, value in result["seconds"].items()],
        ("documents/s", f"{result['documents_per_s']:.1f}"),
        ("chunks/s", f"{result['chunks_per_s']:.1f}"),
        ("bare model.encode, same texts (s)", f"{bare_s:.2f}"),
        ("pipeline overhead", f"{result['overhead_vs_bare_encode']:+.1%}"),
        *[(f"one-document write, median of {len(single_writes)}: {stage} (s)", f"{_median(single_writes, stage):.2f}")
          for stage in ("embed", "write", "total") if single_writes],
        ("peak memory (MB)", f"{result['peak_memory_mb']:.0f}"),
    ])
    write_json(out, result)
    return result


def _one_document_write(settings: Settings, embedder: Embedder, document, number: int) -> dict[str, float]:
    """Seconds to add one copy of ``document`` (under a new id) to the index: one API write."""
    report = IndexReport()
    started = time.perf_counter()
    write_documents([replace(document, id=f"bench-write-{number}")], settings, embedder, report=report)
    return {stage: round(value, 3) for stage, value in report.seconds.items()} | {
        "total": round(time.perf_counter() - started, 3)}


def _median(runs: list[dict[str, float]], stage: str) -> float | None:
    return round(statistics.median(run.get(stage, 0.0) for run in runs), 3) if runs else None
