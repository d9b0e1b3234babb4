"""The `qa` command: a thin shell over the library. Shared options and exit codes: ``cli_options``."""

from __future__ import annotations

import json
import os
import sys
from datetime import date
from pathlib import Path

import click

from .cli_options import (
    CHECK_FAILED,
    EXIT_CODES,
    Choices,
    CommandGroup,
    IsoDate,
    WholeNumbers,
    example,
    index_option,
    json_option,
    log_to_stderr,
    quiet_option,
    settings_for,
    show_progress,
)
from .settings import Settings

MODES = ("hybrid", "dense", "lexical")


@click.group(cls=CommandGroup, context_settings={"help_option_names": ["-h", "--help"]},
             epilog=example("qa index corpus/", 'qa ask "Where did the G7 meet in July 2023?"', "qa serve")
             + "\n\n" + EXIT_CODES)
def cli() -> None:
    """Extractive question answering over your documents.

    Index a folder, then ask; every answer is a quote of the documents, with its citation.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # models are shipped or cached; never fetched
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@cli.command("index", epilog=example("qa index corpus/", "qa index news.jsonl --index /tmp/news-index --rebuild"))
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@index_option
@click.option("--rebuild", is_flag=True, help="Start from an empty index.")
@click.option("--embed-workers", type=click.IntRange(min=0),
              help="Ray workers that embed (default: $QA_EMBED_WORKERS or 0, which embeds in this process).")
@click.option("--ray-address", metavar="ray://HOST:10001|HOST:6379|auto",
              help="The Ray cluster of --embed-workers (default: $QA_RAY_ADDRESS, or a Ray of this machine).")
@quiet_option
def index_command(path: Path, index: Path | None, rebuild: bool, embed_workers: int | None,
                  ray_address: str | None, quiet: bool) -> None:
    """Index a corpus folder or file (incremental: only what changed is embedded)."""
    from .embedding import indexing_embedder
    from .indexing import index_corpus

    settings = settings_for(index, embed_workers=embed_workers, ray_address=ray_address)
    with indexing_embedder(settings) as embedder:
        report = index_corpus(path, settings, embedder, rebuild=rebuild,
                              progress=show_progress(quiet), log=log_to_stderr(quiet))
    click.echo(f"{path}: {report.summary()}; {report.chunks_embedded} chunks embedded")


@cli.command("stats", epilog=example("qa stats --index /tmp/news-index --verify"))
@index_option
@json_option
@click.option("--verify", is_flag=True, help="Also check that vectors, chunks and BM25 agree.")
def stats_command(index: Path | None, as_json: bool, verify: bool) -> None:
    """Show what the index holds."""
    from .store import IndexReader

    settings = settings_for(index)
    reader = IndexReader.open(settings.index_dir)
    try:
        if verify:
            reader.verify()
        m = reader.manifest
        facts = {
            "index": str(settings.index_dir), "documents": m.documents, "chunks": m.chunks,
            "sentences": m.sentences, "sentence_vectors": m.sentence_vectors,
            "model": m.model, "dimension": m.dimension,
            "chunking": f"{m.chunk_tokens} tokens, {m.chunk_overlap} overlap",
            "size_on_disk_bytes": reader.size_on_disk(), "generation": m.generation,
            "created": m.created_at, "last_updated": m.updated_at,
        }
    finally:
        reader.close()
    if as_json:
        click.echo(json.dumps(facts, indent=2))
        return
    width = max(map(len, facts))
    for key, value in facts.items():
        click.echo(f"{key.replace('_', ' '):<{width}}  {value}")
    if verify:
        click.echo("consistency check passed")


@cli.command("ask", epilog=example('qa ask "Where did the G7 meet in July 2023?"',
                            'qa ask "Who pledged aid?" --source "Baltic Wire" --since 2023-07-01 --json'))
@click.argument("question")
@index_option
@click.option("--top-k", type=click.IntRange(1, 100), help="Passages retrieved (default: $QA_TOP_K).")
@json_option
@click.option("--source", multiple=True, help="Only documents from this source (repeatable).")
@click.option("--since", type=IsoDate(), help="Only documents published on or after this day.")
@click.option("--until", type=IsoDate(), help="Only documents published on or before this day.")
@click.option("--recent/--no-recent", default=None,
              help="Rank newer documents up (default: $QA_PREFER_RECENT; questions asking for the latest always do).")
def ask_command(question: str, index: Path | None, top_k: int | None, as_json: bool, source: tuple[str, ...],
                since: date | None, until: date | None, recent: bool | None) -> None:
    """Answer one question from the index."""
    from .pipeline import Pipeline
    from .presentation import render_answer
    from .retrieval import Filters

    pipeline = Pipeline(settings_for(index))
    pipeline.validate_question(question)  # before spending a second on loading models
    pipeline.warm_up()
    answer = pipeline.ask(question, top_k=top_k, filters=Filters(sources=source, since=since, until=until),
                          prefer_recent=recent)
    if as_json:
        click.echo(answer.model_dump_json(indent=2))
    else:
        click.echo(render_answer(answer, color=sys.stdout.isatty()))


@cli.command("eval", epilog=example(
    "qa eval corpus/questions.jsonl --index /tmp/demo-index --compare hybrid,lexical",
    "QA_READER_MODEL=my-reader/ qa eval squad-dev.json --limit 500 --baseline previous",
    "qa eval corpus/questions.jsonl --baseline eval-results/results.json"))
@click.argument("questions", type=click.Path(exists=True, path_type=Path))
@index_option
@click.option("--split", default="test", show_default=True,
              type=click.Choice(["train", "calibration", "test", "all"]),
              help="SQuAD articles or BEIR qrels to use.")
@click.option("--compare", default="hybrid", show_default=True, type=Choices(MODES),
              help="Retrievers to compare, comma-separated.")
@click.option("--gold-passage", is_flag=True, help="Also read each gold passage alone.")
@click.option("--no-read", is_flag=True, help="Retrieval metrics only.")
@click.option("--top-k", default="20", show_default=True, type=WholeNumbers(),
              help="Passages retrieved; several to compare, e.g. 5,20.")
@click.option("--reader-passages", type=WholeNumbers(), help="Passages read; several to compare, e.g. 1,3.")
@click.option("--limit", type=click.IntRange(min=1), help="Only the first N questions.")
@click.option("--sample", type=click.IntRange(min=1), help="A random sample of N questions.")
@click.option("--seed", default=0, show_default=True, help="Seed of --sample.")
@click.option("--baseline", metavar="READER|RESULTS",
              help="A shipped reader to run the same evaluation with, side by side; "
                   "or an earlier results.json to show the differences from.")
@click.option("--out", default=Path("eval-results"), show_default=True, type=click.Path(path_type=Path),
              help="Folder for results.json, predictions.jsonl and report.html.")
@quiet_option
def eval_command(questions: Path, index: Path | None, split: str, compare: list[str], gold_passage: bool,
             no_read: bool, top_k: list[int], reader_passages: list[int] | None, limit: int | None,
             sample: int | None, seed: int, baseline: str | None, out: Path, quiet: bool) -> None:
    """Evaluate over a question set: project JSONL, SQuAD JSON or a BEIR folder.

    Prints a table of retrieval, answer, calibration and latency metrics, one column per run.
    """
    from .eval.report import references_for, table, write_outputs
    from .eval.runner import (
        against_reader,
        cached_index_dir,
        choose_questions,
        evaluate,
        load_question_set,
        run_configs,
    )
    from .indexing import write_documents
    from .pipeline import Pipeline
    from .precision import speed_flags
    from .store import committed_generation

    settings = settings_for(index)
    baseline_reader, baseline_results = _baseline(baseline, settings)
    qset = load_question_set(questions, split)
    pipeline = Pipeline(settings)
    if qset.documents:  # the set brings its own corpus: build (or reuse) an index for it
        settings = settings.model_copy(update={"index_dir": cached_index_dir(qset, settings)})
        pipeline = Pipeline(settings, embedder=pipeline.embedder, reader=pipeline.reader)
        if committed_generation(settings.index_dir) is None:
            click.echo(f"indexing {len(qset.documents):,} documents into {settings.index_dir}", err=True)
            write_documents(qset.documents, settings, pipeline.embedder, rebuild=True,
                            progress=show_progress(quiet))
    chosen = choose_questions(qset.questions, limit, sample, seed)
    read = "retrieved" if any(q.answers for q in chosen) and not no_read else "none"
    configs = run_configs(compare, top_k, reader_passages or [None], read, gold_passage)
    if baseline_reader:
        if read == "none":
            raise click.UsageError("--baseline READER compares readers, but this run reads nothing "
                                   "(--no-read, or a question set without answers)")
        configs = against_reader(configs, settings, baseline_reader)
    results = [evaluate(qset, chosen, pipeline, c, progress=show_progress(quiet)) for c in configs]
    click.echo(f"{qset.name}: {len(chosen):,} questions; {os.cpu_count()} CPUs ({speed_flags()})")
    click.echo(table(results, baseline_results))
    for name, _, value, source in references_for(qset.name):
        click.echo(f"  published: {name}: {value}  ({source})")
    write_outputs(out, qset.name, results, baseline_results)
    click.echo(f"wrote {out}/results.json, predictions.jsonl, report.html")


def _baseline(value: str | None, settings: Settings) -> tuple[str | None, dict | None]:
    """``--baseline``: (a shipped reader to run as well, or None; earlier results, or None)."""
    from .eval.runner import reader_label
    from .reading import shipped_readers

    if value is None:
        return None, None
    if value in shipped_readers():
        if value == reader_label(settings) and not settings.reader_model:
            raise click.BadParameter(f"{value!r} is the reader already in use (QA_READER)",
                                     param_hint="--baseline")
        return value, None
    path = Path(value)
    if not path.is_file():
        raise click.BadParameter(f"{value!r} is neither a shipped reader ({', '.join(shipped_readers())}) "
                                 "nor a results.json file", param_hint="--baseline")
    try:
        return None, json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise click.BadParameter(f"{path} is not a results.json: {exc}", param_hint="--baseline") from None


@cli.group(epilog=example("qa bench index corpus/", "qa bench load --index /tmp/demo-index"))
def bench() -> None:
    """Benchmarks: each prints a table and writes JSON."""


@bench.command("index", epilog=example("qa bench index corpus/", "qa bench index squad-dev.json --limit 500"))
@click.argument("corpus", type=click.Path(exists=True, path_type=Path))
@click.option("--out", default=Path("bench-results/index.json"), show_default=True,
              type=click.Path(dir_okay=False, path_type=Path))
@click.option("--limit", type=click.IntRange(min=1), help="Only the first N documents.")
@click.option("--writes", default=5, show_default=True, type=click.IntRange(min=0),
              help="One-document commits timed after indexing.")
def bench_index(corpus: Path, out: Path, limit: int | None, writes: int) -> None:
    """Indexing throughput, and the pipeline's cost over bare encoding.

    CORPUS is a corpus folder or file, or a SQuAD JSON file (one document per paragraph).
    """
    from .bench.indexing import bench_index as run

    run(corpus, out, limit=limit, writes=writes)


def question_mix_options(command):
    """The question mix of the load and soak benchmarks."""
    for option in reversed([
        click.argument("questions", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path)),
        click.option("--squad", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                     help="SQuAD JSON to sample more questions from (default: the public dev file "
                          "under ../shared/data when it exists)."),
        click.option("--squad-sample", default=100, show_default=True, type=click.IntRange(min=0),
                     help="SQuAD questions added to the mix (0: none); the demo corpus mostly cannot answer them."),
        click.option("--seed", default=0, show_default=True, help="Seed of the SQuAD sample, the shuffle and the writes."),
        click.option("--corpus", default=Path("corpus"), show_default=True, type=click.Path(path_type=Path),
                     help="Corpus the index is built from when missing; its questions.jsonl is the default mix."),
    ]):
        command = option(command)
    return command


def _question_mix(questions: tuple[Path, ...], corpus: Path, squad: Path | None, squad_sample: int, seed: int):
    from .bench.load import DEFAULT_SQUAD, question_mix

    files = list(questions) or [corpus / "questions.jsonl"]
    squad = squad or (DEFAULT_SQUAD if DEFAULT_SQUAD.is_file() else None)
    return question_mix(files, squad, squad_sample, seed)


@bench.command("load", epilog=example("qa bench load --index /tmp/demo-index --clients 1,4 --duration 5"))
@question_mix_options
@click.option("--index", type=click.Path(file_okay=False, path_type=Path),
              help="Index to serve (built from --corpus when missing).")
@click.option("--clients", default="1,4,16", show_default=True, type=WholeNumbers(),
              help="Concurrent clients, one level after another.")
@click.option("--duration", default=15.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Seconds per level.")
@click.option("--max-requests", default=3000, show_default=True, type=click.IntRange(min=1),
              help="Requests per level at most.")
@click.option("--out", default=Path("bench-results/load.json"), show_default=True,
              type=click.Path(dir_okay=False, path_type=Path))
def bench_load(questions, squad, squad_sample, seed, corpus, index, clients, duration, max_requests, out) -> None:
    """Concurrent clients against a real server on 127.0.0.1.

    QUESTIONS are question files (project JSONL or SQuAD JSON); default: CORPUS/questions.jsonl.
    """
    from .bench.load import bench_load as run

    mix = _question_mix(questions, corpus, squad, squad_sample, seed)
    run(settings_for(index).index_dir, corpus, mix, out, levels=tuple(clients), duration_s=duration,
        max_requests=max_requests)


@bench.command("soak", epilog=example("qa bench soak --index /tmp/demo-index --duration 120"))
@question_mix_options
@click.option("--index", type=click.Path(file_okay=False, path_type=Path),
              help="Index to copy and serve (built from a copy of --corpus when missing).")
@click.option("--clients", default=16, show_default=True, type=click.IntRange(min=1))
@click.option("--duration", default=60.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Seconds measured.")
@click.option("--warm-up", default=10.0, show_default=True, type=click.FloatRange(min=0),
              help="Seconds of the same mix first, not measured (its writes are still verified).")
@click.option("--write-fraction", default=0.1, show_default=True, type=click.FloatRange(0, 1),
              help="Share of requests that add, replace or delete documents.")
@click.option("--max-growth-mb", default=50.0, show_default=True, type=float,
              help="Fail when server RSS grows more than this from the first to the last quarter.")
@click.option("--out", default=Path("bench-results/soak.json"), show_default=True,
              type=click.Path(dir_okay=False, path_type=Path))
def bench_soak(questions, squad, squad_sample, seed, corpus, index, clients, duration, warm_up,
               write_fraction, max_growth_mb, out) -> None:
    """Asks mixed with writes for a while: memory, errors, no lost writes. Exits 3 when a bar fails.

    QUESTIONS are question files (project JSONL or SQuAD JSON); default: CORPUS/questions.jsonl.
    """
    from .bench.soak import SoakConfig, run_soak

    config = SoakConfig(clients=clients, duration_s=duration, write_fraction=write_fraction,
                        max_growth_mb=max_growth_mb, seed=seed, warm_up_s=warm_up)
    mix = _question_mix(questions, corpus, squad, squad_sample, seed)
    report = run_soak(settings_for(index).index_dir, corpus, mix, out, config)
    if not report["passed"]:
        raise click.exceptions.Exit(CHECK_FAILED)


@bench.command("scale", epilog=example("qa bench scale", "qa bench scale --sizes 10000,100000,1000000 --writes 3",
                                       "qa bench scale --backend milvus --milvus-uri http://HOST:19530"))
@click.option("--sizes", default="10000,100000", show_default=True, type=WholeNumbers(),
              help="Corpus sizes in chunks, from 100 to 1,000,000.")
@click.option("--writes", default=5, show_default=True, type=click.IntRange(min=1),
              help="One-document writes timed per size.")
@click.option("--questions", default=200, show_default=True, type=click.IntRange(min=5),
              help="Questions timed per size.")
@click.option("--out", default=Path("bench-results/scale.json"), show_default=True,
              type=click.Path(dir_okay=False, path_type=Path))
@click.option("--plot", default=Path("bench-results/scale.png"), show_default=True,
              type=click.Path(dir_okay=False, path_type=Path))
@click.option("--scratch", type=click.Path(file_okay=False, path_type=Path),
              help="Where the indexes are built (default: a temporary folder, removed after).")
@click.option("--backend", type=click.Choice(["local", "milvus"]), default="local", show_default=True,
              help="The backend measured.")
@click.option("--milvus-uri", metavar="URI",
              help="A Milvus server or cluster to measure (collections scale_N_*, dropped after); "
                   "default: a Milvus Lite file in the scratch folder.")
def bench_scale(sizes: list[int], writes: int, questions: int, out: Path, plot: Path, scratch: Path | None,
                backend: str, milvus_uri: str | None) -> None:
    """How writes, retrieval, memory and disk grow with the corpus (synthetic documents, stand-in vectors)."""
    from .bench import scale

    for size in sizes:
        try:
            scale.check_size(size)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--sizes") from None
    scale.run(sizes, writes=writes, questions=questions, out=out, plot_path=plot, scratch=scratch,
              backend=backend, milvus_uri=milvus_uri)


@bench.command("extraction", epilog=example("qa bench extraction", "qa bench extraction --pages my-pages/"))
@click.option("--pages", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder of NAME.html pages, each with NAME.expected.txt (default: the project's fixtures).")
@click.option("--out", default=Path("bench-results/extraction.json"), show_default=True,
              type=click.Path(dir_okay=False, path_type=Path))
def bench_extraction(pages: Path | None, out: Path) -> None:
    """Token precision and recall of the article text extracted from saved web pages."""
    from .bench import extraction

    extraction.run(pages or extraction.PAGES, out)


@bench.command("duplicates", epilog=example("qa bench duplicates", "qa bench duplicates --copies 3"))
@click.option("--copies", default=2, show_default=True, type=click.IntRange(min=1),
              help="Edited copies planted per story the demo questions are about.")
@click.option("--out", default=Path("bench-results/duplicates.json"), show_default=True,
              type=click.Path(dir_okay=False, path_type=Path))
def bench_duplicates(copies: int, out: Path) -> None:
    """Distinct stories in the top 5, before and after near-duplicate grouping, on the demo with planted copies."""
    from .bench.duplicates import bench_duplicates as run

    run(copies, out)


def main() -> None:
    """The installed `qa` script."""
    cli(prog_name="qa")


if __name__ == "__main__":
    main()
