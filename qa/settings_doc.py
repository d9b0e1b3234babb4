"""The configuration table of the README, rendered from the descriptions in ``qa.settings``.

``python -m qa.settings_doc`` prints it; ``tests/test_settings_doc.py`` checks that the README
holds exactly this table between its settings markers.
"""

from __future__ import annotations

import json
import typing
from pathlib import Path

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from .settings import Settings

START_MARKER = "<!-- settings:start -->"
END_MARKER = "<!-- settings:end -->"


class MissingDescription(ValueError):
    """A setting has no description, so the table would leave it unexplained."""


def env_var(model: type[BaseModel], name: str) -> str:
    return f"{model.model_config.get('env_prefix', '')}{name}".upper()


def _default(field: FieldInfo) -> str:
    value = field.default
    if value is None:
        return "(unset)"
    if isinstance(value, Path):
        value = str(value)
    elif isinstance(value, bool | list):
        value = json.dumps(value)
    return f"`{value}`"


def _choices(field: FieldInfo) -> str:
    values = typing.get_args(field.annotation) if typing.get_origin(field.annotation) is typing.Literal else ()
    return " One of " + ", ".join(f"`{v}`" for v in values) + "." if values else ""


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def settings_table(model: type[BaseModel] = Settings) -> str:
    """A markdown table: one row per field, its environment variable, default and description."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in model.model_fields.items():
        if not field.description:
            raise MissingDescription(f"setting {name!r} has no description")
        meaning = _cell(field.description + _choices(field))
        rows.append(f"| `{env_var(model, name)}` | {_cell(_default(field))} | {meaning} |")
    return "\n".join(rows) + "\n"


def table_in(markdown: str) -> str:
    """The text between the settings markers of a markdown document."""
    start, end = markdown.find(START_MARKER), markdown.find(END_MARKER)
    if start < 0 or end < start:
        raise ValueError(f"no {START_MARKER} ... {END_MARKER} section")
    return markdown[start + len(START_MARKER):end].strip("\n") + "\n"


if __name__ == "__main__":
    print(settings_table(), end="")
