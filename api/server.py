"""`qa serve`: index the corpus when there is no index yet, then run uvicorn."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from qa.pipeline import Pipeline
from qa.settings import Settings
from qa.store import committed_generation

from .app import create_app


def serve(settings: Settings, *, host: str, port: int, corpus: Path, progress: bool) -> int:
    import uvicorn
    from uvicorn.config import LOG_LEVELS

    # uvicorn sets up its own loggers only; this gives the app's and the libraries' the same level.
    logging.basicConfig(level=LOG_LEVELS[settings.log_level], stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")

    pipeline = Pipeline(settings)
    if committed_generation(Path(settings.index_dir)) is None:
        print(f"no index at {settings.index_dir}: indexing {corpus} first", file=sys.stderr)
        report = pipeline.index_corpus(corpus, progress=progress,
                                       log=lambda message: print(message, file=sys.stderr))
        print(f"{corpus}: {report.summary()}", file=sys.stderr)
    app = create_app(settings, pipeline)
    print(f"serving on http://{host}:{port}/  (API docs at /docs)", file=sys.stderr)
    uvicorn.run(app, host=host, port=port, log_level=settings.log_level, timeout_graceful_shutdown=20)
    return 0
