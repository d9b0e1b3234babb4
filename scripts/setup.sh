#!/usr/bin/env bash
# Create .venv and install everything. torch==2.13.0 goes first: that pin takes the local CPU
# build; any other torch requirement would pull gigabytes of CUDA packages.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet torch==2.13.0
.venv/bin/python -m pip install --quiet -e ".[test]"
echo "setup: .venv ready"
