"""The layout's promises: importing qa is cheap, and the runtime never imports its tools."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

QA = Path(__file__).resolve().parent.parent / "qa"
TOOLS = ("qa.eval", "qa.bench", "qa.training")
# The command-line shell offers the tools as commands, so it alone may import them (on use).
SHELL = {"cli.py", "cli_options.py"}


def test_importing_qa_loads_no_model_library_and_no_web_stack():
    heavy = ("torch", "faiss", "fastapi", "matplotlib", "transformers", "sentence_transformers", "uvicorn")
    code = f"import sys, qa; print(','.join(m for m in {heavy!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == ""


def _imported_modules(path: Path) -> set[str]:
    package = "qa" if path.parent == QA else "qa." + path.parent.name
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                names.add(f"{base}.{node.module}" if node.module else base)
            else:
                names.add(node.module or "")
    return names


def test_the_runtime_imports_no_tool():
    offenders = {}
    for path in QA.glob("*.py"):
        if path.name in SHELL:
            continue
        tools = sorted(m for m in _imported_modules(path) if m.startswith(TOOLS))
        if tools:
            offenders[path.name] = tools
    assert offenders == {}


def test_the_import_scan_sees_relative_imports_of_tools(tmp_path):
    assert "qa.eval.metrics" in _imported_modules(QA / "bench" / "live_server.py")
