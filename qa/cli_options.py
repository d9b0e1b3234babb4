"""What the `qa` commands share: options, value types, settings, exit codes and command plugins.

Plugins (``qa serve`` from the ``api`` package) import these too, so that every command spells its
options and reports its errors alike.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

import click
from pydantic import ValidationError

from .errors import QAError
from .settings import Settings

# Entry-point group of commands that other packages add to `qa` (``name = "module:command"``).
PLUGIN_GROUP = "qa.commands"

USAGE_ERROR = 1
DATA_ERROR = 2
CHECK_FAILED = 3
INTERRUPTED = 130

EXIT_CODES = f"""\b
Exit codes:
  0    done
  {USAGE_ERROR}    usage error: unknown command, bad option or argument, bad QA_* setting
  {DATA_ERROR}    data or index error: no index, unreadable input, unusable question
  {CHECK_FAILED}    a benchmark ran and failed its bar (bench soak)
  {INTERRUPTED}  interrupted"""


def example(*commands: str) -> str:
    """A command's help epilog: the example commands, kept on their own lines."""
    return "\b\nExample:\n" + "\n".join(f"  {command}" for command in commands)


index_option = click.option("--index", type=click.Path(file_okay=False, path_type=Path),
                            help="Index directory (default: $QA_INDEX_DIR or ./index).")
quiet_option = click.option("--quiet", is_flag=True, help="No progress bars or per-file messages.")
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")


def settings_for(index: Path | None, **options) -> Settings:
    """The QA_* settings, with the index directory of ``--index`` and the settings of the other
    options given (None: not given)."""
    given = {name: value for name, value in {"index_dir": index, **options}.items() if value is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        problems = "; ".join(f"{_setting_name(e['loc'])}: {e['msg']}" for e in exc.errors())
        raise click.UsageError(problems) from None


def _setting_name(location: tuple) -> str:
    return "QA_" + "_".join(map(str, location)).upper() if location else "settings"


def show_progress(quiet: bool) -> bool:
    return not quiet and sys.stderr.isatty()


def log_to_stderr(quiet: bool) -> Callable[[str], None]:
    return (lambda message: None) if quiet else (lambda message: click.echo(message, err=True))


class IsoDate(click.ParamType):
    name = "YYYY-MM-DD"

    def convert(self, value, param, ctx) -> date:
        if isinstance(value, date):
            return value
        try:
            return date.fromisoformat(value)
        except ValueError:
            self.fail(f"not a YYYY-MM-DD date: {value!r}", param, ctx)


class WholeNumbers(click.ParamType):
    """Comma-separated whole numbers of at least 1, such as ``5,20``."""

    name = "N[,N...]"

    def convert(self, value, param, ctx) -> list[int]:
        if isinstance(value, list):
            return value
        try:
            numbers = [int(part) for part in str(value).split(",")]
        except ValueError:
            self.fail(f"takes whole numbers separated by commas, got {value!r}", param, ctx)
        if any(n < 1 for n in numbers):
            self.fail(f"values must be at least 1, got {value!r}", param, ctx)
        return numbers


class Choices(click.ParamType):
    """Comma-separated names, each one of ``choices``."""

    def __init__(self, choices: tuple[str, ...]):
        self.choices = choices
        self.name = ",".join(choices)

    def convert(self, value, param, ctx) -> list[str]:
        if isinstance(value, list):
            return value
        names = str(value).split(",")
        unknown = [n for n in names if n not in self.choices]
        if unknown:
            self.fail(f"unknown {', '.join(map(repr, unknown))}; choose from {', '.join(self.choices)}",
                      param, ctx)
        return names


@contextmanager
def _exit_codes() -> Iterator[None]:
    """Usage errors exit 1 (click's own default is 2, which `qa` keeps for data errors)."""
    try:
        yield
    except click.UsageError as exc:
        exc.exit_code = USAGE_ERROR
        raise
    except QAError as exc:
        error = click.ClickException(str(exc))
        error.exit_code = DATA_ERROR
        raise error from None
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        raise click.exceptions.Exit(INTERRUPTED) from None


class CommandGroup(click.Group):
    """The `qa` group: its own commands, those of the ``qa.commands`` entry points, and the exit codes."""

    def make_context(self, *args, **kwargs) -> click.Context:
        with _exit_codes():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx: click.Context):
        with _exit_codes():
            return super().invoke(ctx)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_plugins()})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        command = super().get_command(ctx, name)
        entry = None if command else _plugins().get(name)
        if entry is None:
            return command
        try:
            return entry.load()  # imported only when used: `qa index` never loads the web stack
        except ImportError as exc:
            raise click.UsageError(f"'qa {name}' needs {exc.name or exc}, which is not installed "
                                   f"(it comes from {entry.value})") from None


def _plugins() -> dict[str, EntryPoint]:
    return {entry.name: entry for entry in entry_points(group=PLUGIN_GROUP)}
