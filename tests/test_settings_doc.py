"""The README's configuration table is the one rendered from the settings' own descriptions."""

from pathlib import Path

import pytest
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from qa.settings import Settings
from qa.settings_doc import END_MARKER, START_MARKER, MissingDescription, settings_table, table_in

README = Path(__file__).resolve().parent.parent / "README.md"


def test_every_setting_has_a_description():
    missing = [name for name, field in Settings.model_fields.items() if not (field.description or "").strip()]
    assert missing == []


def test_readme_table_is_the_generated_one():
    assert table_in(README.read_text(encoding="utf-8")) == settings_table(), (
        "README's configuration table is stale: paste the output of `python -m qa.settings_doc` "
        f"between {START_MARKER} and {END_MARKER}")


def test_table_has_one_row_per_setting_with_its_default():
    rows = settings_table().splitlines()[2:]
    assert [row.split(" | ")[0] for row in rows] == [f"| `QA_{name.upper()}`" for name in Settings.model_fields]
    assert "| `QA_TOP_K` | `5` |" in settings_table()
    assert "| `QA_READER_MODEL` | (unset) |" in settings_table()
    assert "One of `auto`, `float32`, `bfloat16`." in settings_table()


class _Undescribed(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="X_")
    described: int = Field(1, description="has one")
    bare: int = 2


def test_a_field_without_description_is_refused_by_name():
    with pytest.raises(MissingDescription, match="'bare'"):
        settings_table(_Undescribed)


def test_pipes_in_descriptions_are_escaped():
    class Described(BaseSettings):
        model_config = SettingsConfigDict(env_prefix="X_")
        described: int = Field(1, description="has one | with a pipe")

    assert "| `X_DESCRIBED` | `1` | has one \\| with a pipe |" in settings_table(Described)


def test_missing_markers_are_an_error():
    with pytest.raises(ValueError, match="settings:start"):
        table_in("# no table here\n")
