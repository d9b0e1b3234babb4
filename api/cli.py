"""`qa serve`: a command of the `qa` group, found through the ``qa.commands`` entry point."""

from __future__ import annotations

from pathlib import Path

import click

from qa.cli_options import example, index_option, quiet_option, settings_for, show_progress


@click.command("serve", epilog=example("qa serve", "qa serve --index /tmp/news-index --host 0.0.0.0 --port 8080"))
@index_option
@click.option("--corpus", default=Path("corpus"), show_default=True, type=click.Path(path_type=Path),
              help="Indexed first when no index exists.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@quiet_option
def serve(index: Path | None, corpus: Path, host: str, port: int, quiet: bool) -> None:
    """Serve the API and the chat page (indexes the corpus first if needed)."""
    from .server import serve as run_server

    run_server(settings_for(index), host=host, port=port, corpus=corpus, progress=show_progress(quiet))
