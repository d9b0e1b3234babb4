#!/usr/bin/env bash
# Create .venv and install everything, or do nothing when .venv is already up to date.
# torch==2.13.0 goes first: that pin takes the local CPU build; any other torch requirement
# would pull gigabytes of CUDA packages.
# A successful install records what it installed in .venv/.qa-setup-stamp (the hash of
# pyproject.toml, the torch pin and the extras); the next run skips pip while that still holds.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH=torch==2.13.0
PROJECT='.[test]'
STAMP=.venv/.qa-setup-stamp

wanted="pyproject.toml $(sha256sum pyproject.toml | cut -d' ' -f1)
$TORCH
$PROJECT"
if [ -x .venv/bin/python ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$wanted" ]; then
    echo "setup: .venv up to date with pyproject.toml"
    exit 0
fi

if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
rm -f "$STAMP"  # an install that fails half-way must not pass for a finished one
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet "$TORCH"
.venv/bin/python -m pip install --quiet -e "$PROJECT"
printf '%s\n' "$wanted" > "$STAMP"
echo "setup: .venv ready"
