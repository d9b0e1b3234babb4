"""scripts/setup.sh installs once, then skips pip until pyproject.toml changes.

Runs the real script in a scratch copy of the repository with a stand-in python that records
its arguments instead of creating a venv or installing anything.
"""

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

FAKE_PYTHON = """#!/usr/bin/env bash
echo "$*" >> "$FAKE_LOG"
if [ "$1 $2" = "-m venv" ]; then
    mkdir -p "$3/bin" && cp "$0" "$3/bin/python"
elif [ -n "${FAKE_PIP_FAILS:-}" ]; then
    exit 1
fi
"""


@pytest.fixture
def checkout(tmp_path):
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "setup.sh", tmp_path / "scripts" / "setup.sh")
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    fake = tmp_path / "fake-python"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    return tmp_path


def _setup(checkout: Path, **env) -> tuple[int, str, list[str]]:
    log = checkout / "calls.log"
    log.unlink(missing_ok=True)
    env = {**os.environ, "PYTHON": str(checkout / "fake-python"), "FAKE_LOG": str(log), **env}
    result = subprocess.run(["bash", str(checkout / "scripts" / "setup.sh")], check=False,
                            capture_output=True, text=True, env=env)
    calls = log.read_text().splitlines() if log.exists() else []
    return result.returncode, result.stdout, calls


def test_first_run_creates_the_venv_and_installs_torch_first(checkout):
    rc, out, calls = _setup(checkout)
    assert rc == 0 and "setup: .venv ready" in out
    assert calls == ["-m venv .venv", "-m pip install --quiet --upgrade pip",
                     "-m pip install --quiet torch==2.13.0", "-m pip install --quiet -e .[test]"]
    assert (checkout / ".venv" / ".qa-setup-stamp").is_file()


def test_second_run_skips_pip(checkout):
    _setup(checkout)
    rc, out, calls = _setup(checkout)
    assert rc == 0 and calls == []
    assert "up to date" in out


def test_changed_pyproject_reinstalls_into_the_same_venv(checkout):
    _setup(checkout)
    (checkout / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "2"\n')
    rc, _, calls = _setup(checkout)
    assert rc == 0
    assert "-m venv .venv" not in calls and "-m pip install --quiet -e .[test]" in calls
    assert _setup(checkout)[2] == []


def test_failed_install_leaves_no_stamp_and_is_retried(checkout):
    _setup(checkout)
    (checkout / "pyproject.toml").write_text('[project]\nname = "y"\n')
    rc, _, _ = _setup(checkout, FAKE_PIP_FAILS="1")
    assert rc != 0
    assert not (checkout / ".venv" / ".qa-setup-stamp").exists()
    (checkout / "pyproject.toml").write_text('[project]\nname = "x"\n')  # back to what was installed before
    assert "-m pip install --quiet torch==2.13.0" in _setup(checkout)[2]
