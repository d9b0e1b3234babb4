"""The `qa` command: a thin shell over the library."""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import date
from pathlib import Path
from typing import Sequence

from .errors import InvalidInput, QAError
from .settings import Settings


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {}
    if getattr(args, "index", None):
        overrides["index_dir"] = Path(args.index)
    return Settings(**overrides)


def _progress(args: argparse.Namespace) -> bool:
    return not getattr(args, "quiet", False) and sys.stderr.isatty()


def _log(args: argparse.Namespace):
    quiet = getattr(args, "quiet", False)
    return (lambda message: None) if quiet else (lambda message: print(message, file=sys.stderr))


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a YYYY-MM-DD date: {value!r}") from None


def _int_list(value: str, option: str) -> list[int]:
    try:
        numbers = [int(part) for part in str(value).split(",")]
    except ValueError:
        raise InvalidInput(f"{option} takes whole numbers separated by commas, got {value!r}") from None
    if any(n < 1 for n in numbers):
        raise InvalidInput(f"{option} values must be at least 1")
    return numbers


def cmd_index(args: argparse.Namespace) -> int:
    from .embedding import Embedder
    from .indexing import index_corpus

    settings = _settings(args)
    embedder = Embedder.from_settings(settings)
    report = index_corpus(Path(args.path), settings, embedder, rebuild=args.rebuild,
                          progress=_progress(args), log=_log(args))
    print(f"{args.path}: {report.summary()}; {report.chunks_embedded} chunks embedded")
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    from .store import IndexReader

    settings = _settings(args)
    index = IndexReader.open(settings.index_dir)
    try:
        if args.verify:
            index.verify()
        m = index.manifest
        stats = {
            "index": str(settings.index_dir), "documents": m.documents, "chunks": m.chunks,
            "sentences": m.sentences, "sentence_vectors": m.sentence_vectors,
            "model": m.model, "dimension": m.dimension,
            "chunking": f"{m.chunk_tokens} tokens, {m.chunk_overlap} overlap",
            "size_on_disk_bytes": index.size_on_disk(), "generation": m.generation,
            "created": m.created_at, "last_updated": m.updated_at,
        }
    finally:
        index.close()
    if args.json:
        print(json.dumps(stats, indent=2))
    else:
        width = max(map(len, stats))
        for key, value in stats.items():
            print(f"{key.replace('_', ' '):<{width}}  {value}")
        if args.verify:
            print("consistency check passed")
    return 0


def cmd_ask(args: argparse.Namespace) -> int:
    from .pipeline import Pipeline
    from .presentation import render_answer
    from .retrieval import Filters

    settings = _settings(args)
    pipeline = Pipeline(settings)
    filters = Filters(sources=tuple(args.source or ()), since=args.since, until=args.until)
    if args.top_k is not None and not 1 <= args.top_k <= 100:
        raise InvalidInput("--top-k must be between 1 and 100")
    pipeline.validate_question(args.question)  # before spending a second on loading models
    pipeline.warm_up()
    answer = pipeline.ask(args.question, top_k=args.top_k, filters=filters)
    if args.json:
        print(answer.model_dump_json(indent=2))
    else:
        print(render_answer(answer, color=sys.stdout.isatty()))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from api.server import serve

    settings = _settings(args)
    return serve(settings, host=args.host, port=args.port, corpus=Path(args.corpus),
                 progress=_progress(args))


def cmd_bench_index(args: argparse.Namespace) -> int:
    from .bench.indexing import bench_index

    if args.writes < 0:
        raise InvalidInput("--writes must be 0 or more")
    bench_index(Path(args.corpus), Path(args.out), limit=args.limit, writes=args.writes)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from .eval.report import references_for, table, write_outputs
    from .eval.runner import (RunConfig, cached_index_dir, choose_questions, evaluate,
                             load_question_set)
    from .indexing import write_documents
    from .pipeline import Pipeline
    from .store import committed_generation

    settings = _settings(args)
    qset = load_question_set(Path(args.questions), args.split)
    pipeline = Pipeline(settings)
    if qset.documents:  # the set brings its own corpus: build (or reuse) an index for it
        settings = settings.model_copy(update={"index_dir": cached_index_dir(qset, settings)})
        pipeline = Pipeline(settings, embedder=pipeline.embedder, reader=pipeline.reader)
        if committed_generation(settings.index_dir) is None:
            print(f"indexing {len(qset.documents):,} documents into {settings.index_dir}", file=sys.stderr)
            write_documents(qset.documents, settings, pipeline.embedder, rebuild=True,
                            progress=_progress(args))
    questions = choose_questions(qset.questions, args.limit, args.sample, args.seed)
    has_answers = any(q.answers for q in questions)
    read = "retrieved" if has_answers and not args.no_read else "none"
    top_ks = _int_list(args.top_k, "--top-k")
    passages = _int_list(args.reader_passages, "--reader-passages") if args.reader_passages else [None]
    configs = []
    for mode in args.compare.split(","):
        for top_k in top_ks:
            for n in passages:
                name = mode + (f" k={top_k}" if len(top_ks) > 1 else "") + (f" read={n}" if len(passages) > 1 else "")
                configs.append(RunConfig(name, mode=mode, read=read, top_k=top_k, reader_passages=n))
    if args.gold_passage:
        configs.append(RunConfig("gold-passage", read="gold"))
    baseline = json.loads(Path(args.baseline).read_text()) if args.baseline else None
    results = [evaluate(qset, questions, pipeline, c, progress=_progress(args)) for c in configs]
    print(f"{qset.name}: {len(questions):,} questions")
    print(table(results, baseline))
    for name, _, value, source in references_for(qset.name):
        print(f"  published: {name}: {value}  ({source})")
    out = Path(args.out)
    write_outputs(out, qset.name, results, baseline)
    print(f"wrote {out}/results.json, predictions.jsonl, report.html")
    return 0


def _question_mix(args: argparse.Namespace):
    from .bench.load import DEFAULT_SQUAD, question_mix

    files = [Path(path) for path in args.questions] or [Path(args.corpus) / "questions.jsonl"]
    squad = Path(args.squad) if args.squad else (DEFAULT_SQUAD if DEFAULT_SQUAD.is_file() else None)
    return question_mix(files, squad, args.squad_sample, args.seed)


def cmd_bench_load(args: argparse.Namespace) -> int:
    from .bench.load import bench_load

    settings = _settings(args)
    bench_load(settings.index_dir, Path(args.corpus), _question_mix(args), Path(args.out),
               levels=tuple(_int_list(args.clients, "--clients")), duration_s=args.duration,
               max_requests=args.max_requests)
    return 0


def cmd_bench_soak(args: argparse.Namespace) -> int:
    from .bench.soak import SoakConfig, run_soak

    if args.clients < 1 or args.duration <= 0 or args.warm_up < 0 or not 0 <= args.write_fraction <= 1:
        raise InvalidInput("--clients must be at least 1, --duration positive, --warm-up not negative, "
                           "--write-fraction between 0 and 1")
    config = SoakConfig(clients=args.clients, duration_s=args.duration, write_fraction=args.write_fraction,
                        max_growth_mb=args.max_growth_mb, seed=args.seed, warm_up_s=args.warm_up)
    report = run_soak(_settings(args).index_dir, Path(args.corpus), _question_mix(args), Path(args.out), config)
    return 0 if report["passed"] else 1


def _add_question_mix_arguments(b: argparse.ArgumentParser) -> None:
    b.add_argument("questions", nargs="*",
                   help="question files (project JSONL or SQuAD JSON); default: CORPUS/questions.jsonl")
    b.add_argument("--squad", help="SQuAD JSON to sample more questions from (default: the public dev "
                                   "file under ../shared/data when it exists)")
    b.add_argument("--squad-sample", type=int, default=100, dest="squad_sample",
                   help="SQuAD questions added to the mix (0: none); the demo corpus mostly cannot answer them")
    b.add_argument("--seed", type=int, default=0, help="seed of the SQuAD sample, the shuffle and the writes")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qa", description="Extractive question answering over your documents.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("index", help="index a corpus folder or file (incremental)")
    p.add_argument("path")
    p.add_argument("--index", help="index directory (default: $QA_INDEX_DIR or ./index)")
    p.add_argument("--rebuild", action="store_true", help="start from an empty index")
    p.add_argument("--quiet", action="store_true", help="no progress or per-file messages")
    p.set_defaults(run=cmd_index)

    p = sub.add_parser("stats", help="what the index holds")
    p.add_argument("--index")
    p.add_argument("--json", action="store_true")
    p.add_argument("--verify", action="store_true", help="also check vectors, chunks and BM25 agree")
    p.set_defaults(run=cmd_stats)

    p = sub.add_parser("ask", help="answer one question from the index")
    p.add_argument("question")
    p.add_argument("--index")
    p.add_argument("--top-k", type=int, dest="top_k")
    p.add_argument("--json", action="store_true", help="print the Answer as JSON")
    p.add_argument("--source", action="append", help="only documents from this source (repeatable)")
    p.add_argument("--since", type=_date, help="only documents published on or after YYYY-MM-DD")
    p.add_argument("--until", type=_date, help="only documents published on or before YYYY-MM-DD")
    p.set_defaults(run=cmd_ask)

    p = sub.add_parser("serve", help="serve the API and chat page (indexes the corpus first if needed)")
    p.add_argument("--index")
    p.add_argument("--corpus", default="corpus", help="indexed first when no index exists")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(run=cmd_serve)

    p = sub.add_parser("eval", help="evaluate over a question set (project JSONL, SQuAD JSON, BEIR folder)")
    p.add_argument("questions")
    p.add_argument("--index", help="index for question sets without their own corpus")
    p.add_argument("--split", default="test", choices=["train", "calibration", "test", "all"],
                   help="SQuAD articles / BEIR qrels to use (default: test)")
    p.add_argument("--compare", default="hybrid", help="retrievers to compare: hybrid,dense,lexical")
    p.add_argument("--gold-passage", action="store_true", help="also read each gold passage alone")
    p.add_argument("--no-read", action="store_true", help="retrieval metrics only")
    p.add_argument("--top-k", default="20", dest="top_k", help="passages retrieved; several: 5,20")
    p.add_argument("--reader-passages", dest="reader_passages", help="passages read; several: 1,3")
    p.add_argument("--limit", type=int)
    p.add_argument("--sample", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--baseline", help="an earlier results.json to compare against")
    p.add_argument("--out", default="eval-results")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(run=cmd_eval)

    p = sub.add_parser("bench", help="benchmarks (print a table, write JSON)")
    bench = p.add_subparsers(dest="bench", required=True)
    b = bench.add_parser("index", help="indexing throughput and the pipeline's cost over bare encoding")
    b.add_argument("corpus", help="a corpus folder/file, or a SQuAD JSON file (one document per paragraph)")
    b.add_argument("--out", default="bench-results/index.json")
    b.add_argument("--limit", type=int, help="only the first N documents")
    b.add_argument("--writes", type=int, default=5, help="one-document commits timed after indexing")
    b.set_defaults(run=cmd_bench_index)
    b = bench.add_parser("load", help="concurrent clients against a real server on 127.0.0.1")
    _add_question_mix_arguments(b)
    b.add_argument("--index", help="index to serve (built from --corpus when missing)")
    b.add_argument("--corpus", default="corpus")
    b.add_argument("--clients", default="1,4,16")
    b.add_argument("--duration", type=float, default=15.0, help="seconds per level")
    b.add_argument("--max-requests", type=int, default=3000, dest="max_requests")
    b.add_argument("--out", default="bench-results/load.json")
    b.set_defaults(run=cmd_bench_load)
    b = bench.add_parser("soak", help="asks mixed with writes for a while; memory, errors, no lost writes")
    _add_question_mix_arguments(b)
    b.add_argument("--index", help="index to copy and serve (built from a copy of --corpus when missing)")
    b.add_argument("--corpus", default="corpus")
    b.add_argument("--clients", type=int, default=16)
    b.add_argument("--duration", type=float, default=60.0, help="seconds measured")
    b.add_argument("--warm-up", type=float, default=10.0, dest="warm_up",
                   help="seconds of the same mix first, not measured (its writes are still verified)")
    b.add_argument("--write-fraction", type=float, default=0.1, dest="write_fraction",
                   help="share of requests that add, replace or delete documents")
    b.add_argument("--max-growth-mb", type=float, default=50.0, dest="max_growth_mb",
                   help="fail when server RSS grows more than this from the first to the last quarter")
    b.add_argument("--out", default="bench-results/soak.json")
    b.set_defaults(run=cmd_bench_soak)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except QAError as exc:
        print(f"qa: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("qa: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
