"""The `qa` command in process (click's CliRunner): help, exit codes, plugins, a tiny index end to end."""

from __future__ import annotations

import ast
import json
import logging
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from qa.cli_options import PLUGIN_GROUP

from .helpers import run_qa as qa

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = [[], ["index"], ["stats"], ["ask"], ["eval"], ["bench"], ["bench", "index"], ["bench", "load"], ["bench", "soak"],
            ["serve"]]
QUESTION = "Where did the Alpha talks take place?"


def _one_line_error(result, *words: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert all(word in lines[0] for word in words), result.stderr
    assert result.stdout == ""


def _register_commands(directory: Path, monkeypatch, commands: dict[str, str]) -> None:
    """A distribution on sys.path whose ``qa.commands`` entry points are ``commands``."""
    dist = directory / "qa_cli_plugins-0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: qa-cli-plugins\nVersion: 0\n")
    lines = "".join(f"{name} = {target}\n" for name, target in commands.items())
    (dist / "entry_points.txt").write_text(f"[{PLUGIN_GROUP}]\n{lines}")
    monkeypatch.syspath_prepend(str(directory))


@pytest.fixture
def declared_plugins(tmp_path, monkeypatch):
    """The plugin commands pyproject.toml declares, whether or not this checkout is installed."""
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"][PLUGIN_GROUP]
    _register_commands(tmp_path / "site", monkeypatch, declared)
    return declared


def test_the_group_help_lists_the_commands_and_documents_exit_codes(declared_plugins):
    result = qa("--help")
    assert result.exit_code == 0
    for name in ("index", "stats", "ask", "eval", "bench", "serve"):
        assert f"\n  {name} " in result.output
    for code, meaning in [("0", "done"), ("1", "usage error"), ("2", "data or index error")]:
        assert f"  {code} " in result.output and meaning in result.output


@pytest.mark.parametrize("command", COMMANDS, ids=lambda command: " ".join(command) or "qa")
def test_every_command_has_help_with_an_example(command, declared_plugins):
    result = qa(*command, "--help")
    assert result.exit_code == 0, result.output
    description = result.output.split("\n\n")[1].strip()
    assert description and description[0].isupper()
    example = result.output.split("Example:\n", 1)[1]
    assert example.lstrip().startswith(" ".join(["qa", *command]))


def test_serve_is_the_entry_point_of_the_api_package(declared_plugins):
    assert declared_plugins == {"serve": "api.cli:serve"}
    result = qa("serve", "--help")
    for option in ("--index", "--corpus", "--host", "--port", "--quiet"):
        assert option in result.output
    assert qa("serve", "--port", "http").exit_code == 1


def test_a_plugin_that_cannot_import_says_what_is_missing(tmp_path, monkeypatch):
    _register_commands(tmp_path, monkeypatch, {"broken": "no_such_module_here:command"})
    result = qa("broken")
    assert result.exit_code == 1
    _one_line_error(result, "qa broken", "no_such_module_here", "not installed")


def test_the_library_never_imports_the_api():
    for path in (ROOT / "qa").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
            assert not any(n == "api" or n.startswith("api.") for n in names), path


@pytest.mark.parametrize("args, words", [
    (["ask"], ["Missing argument 'QUESTION'"]),
    (["ask", QUESTION, "--since", "soon"], ["--since", "YYYY-MM-DD"]),
    (["ask", QUESTION, "--top-k", "0"], ["--top-k"]),
    (["eval", str(ROOT / "corpus" / "questions.jsonl"), "--top-k", "five"], ["--top-k", "five"]),
    (["eval", str(ROOT / "corpus" / "questions.jsonl"), "--compare", "hybrid,bm25"], ["--compare", "bm25"]),
    (["bench", "soak", "--write-fraction", "2"], ["--write-fraction"]),
    (["reindex"], ["No such command 'reindex'"]),
])
def test_usage_errors_exit_1(args, words):
    result = qa(*args)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("Usage: qa") and "Traceback" not in result.stderr
    assert all(word in result.stderr for word in words), result.stderr


def test_a_bad_setting_is_a_usage_error(tmp_path):
    result = qa("stats", "--index", str(tmp_path), QA_TOP_K="0")
    assert result.exit_code == 1
    assert "QA_TOP_K" in result.stderr and "Traceback" not in result.stderr


def test_a_missing_index_is_a_data_error_on_one_line(tmp_path):
    result = qa("stats", "--index", str(tmp_path / "none"))
    assert result.exit_code == 2
    _one_line_error(result, "no index at", str(tmp_path / "none"))


def test_an_interrupt_exits_130(tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("qa.store.IndexReader.open", interrupted)
    result = qa("stats", "--index", str(tmp_path))
    assert result.exit_code == 130 and result.stderr == "Interrupted.\n"


def test_a_soak_that_fails_its_bars_exits_3(tmp_path, monkeypatch):
    monkeypatch.setattr("qa.bench.load.question_mix", lambda *args: [])
    monkeypatch.setattr("qa.bench.soak.run_soak", lambda *args: {"passed": False})
    assert qa("bench", "soak", "--index", str(tmp_path), "--squad-sample", "0").exit_code == 3
    monkeypatch.setattr("qa.bench.soak.run_soak", lambda *args: {"passed": True})
    assert qa("bench", "soak", "--index", str(tmp_path), "--squad-sample", "0").exit_code == 0


def test_baseline_is_a_shipped_reader_or_a_results_file(tmp_path):
    questions = str(ROOT / "corpus" / "questions.jsonl")
    unknown = qa("eval", questions, "--baseline", "nosuch")
    assert unknown.exit_code == 1 and "neither a shipped reader (accurate, fast, previous" in unknown.stderr
    same = qa("eval", questions, "--baseline", "previous", QA_READER="previous")
    assert same.exit_code == 1 and "already in use" in same.stderr
    (tmp_path / "results.json").write_text("{not json")
    broken = qa("eval", questions, "--baseline", str(tmp_path / "results.json"))
    assert broken.exit_code == 1 and "not a results.json" in broken.stderr


def test_the_installed_script_end_to_end(tmp_path):
    """One real process of the installed `qa` script (the code of this checkout first on its path)."""
    script = Path(sys.executable).with_name("qa")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}

    def run(*args):
        return subprocess.run([str(script), *args], capture_output=True, text=True, env=env, timeout=120, check=False)

    assert "Exit codes:" in run("--help").stdout
    missing = run("stats", "--index", str(tmp_path / "none"))
    assert missing.returncode == 2
    expected = f"Error: no index at {tmp_path / 'none'}; build one with `qa index CORPUS`"
    assert missing.stderr.strip().splitlines() == [expected]


class _CurrentStderr(logging.Handler):
    """Writes to whatever sys.stderr is when a record comes: inside CliRunner, the command's own."""

    def emit(self, record: logging.LogRecord) -> None:
        sys.stderr.write(self.format(record) + "\n")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Two documents indexed by `qa index`, run while the root logger writes to stderr (as `qa serve` sets it)."""
    folder = tmp_path_factory.mktemp("tiny")
    corpus = folder / "corpus"
    corpus.mkdir()
    (corpus / "alpha.txt").write_text("The Alpha talks took place in Vilnius in July.\n")
    (corpus / "beta.txt").write_text("Beta aid reached Kyiv by truck in August.\n")
    handler = _CurrentStderr()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    try:
        result = qa("index", str(corpus), "--index", str(folder / "index"))
    finally:
        logging.getLogger().removeHandler(handler)
    return folder, result


@pytest.mark.slow
def test_index_prints_its_summary_and_no_debug_lines(tiny):
    _, result = tiny
    assert result.exit_code == 0, result.output
    assert "2 added, 0 updated, 0 unchanged, 0 removed, 0 skipped" in result.stdout
    assert "DEBUG" not in result.output


@pytest.mark.slow
def test_stats_and_ask_against_the_tiny_index(tiny):
    folder, _ = tiny
    index = str(folder / "index")
    stats = qa("stats", "--index", index, "--json", "--verify")
    assert stats.exit_code == 0, stats.output
    assert json.loads(stats.stdout)["documents"] == 2
    text = qa("ask", QUESTION, "--index", index)
    assert text.exit_code == 0, text.output
    assert "Vilnius" in text.stdout and "confidence" in text.stdout and "alpha.txt" in text.stdout
    filtered = qa("ask", QUESTION, "--index", index, "--json", "--source", "nobody", "--since", "2023-01-01")
    assert filtered.exit_code == 0, filtered.output
    data = json.loads(filtered.stdout)
    assert data["abstained"] and data["passages"] == []
    empty = qa("ask", "   ", "--index", index)
    assert empty.exit_code == 2
    _one_line_error(empty, "empty")


@pytest.mark.slow
def test_eval_with_a_baseline_reader_runs_both_side_by_side(tiny, tiny_model_dir, tmp_path):
    folder, _ = tiny
    questions = tmp_path / "questions.jsonl"
    questions.write_text(json.dumps({"id": "q1", "question": QUESTION, "answer": "Vilnius",
                                     "doc_id": "alpha.txt"}) + "\n")
    result = qa("eval", str(questions), "--index", str(folder / "index"), "--baseline", "previous",
                "--out", str(tmp_path / "out"), QA_READER_MODEL=str(tiny_model_dir))
    assert result.exit_code == 0, result.output
    names = [f"hybrid · reader {tiny_model_dir.name}", "hybrid · reader previous"]
    header = result.stdout.splitlines()[1].split()
    assert " ".join(header[1:]) == " ".join(names)
    runs = json.loads((tmp_path / "out" / "results.json").read_text())["runs"]
    assert [r["config"]["name"] for r in runs] == names
    assert [r["config"]["reader"] for r in runs] == [None, "previous"]
    assert runs[1]["metrics"]["f1"] > 0
    predictions = [json.loads(line) for line in (tmp_path / "out" / "predictions.jsonl").read_text().splitlines()]
    assert [p["config"] for p in predictions] == names
    assert "Vilnius" in predictions[1]["prediction"] != predictions[0]["prediction"]
