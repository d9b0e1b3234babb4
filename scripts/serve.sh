#!/usr/bin/env bash
# Set up (idempotent), index corpus/ if needed, and serve the API and chat page on 127.0.0.1:8000.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec .venv/bin/qa serve "$@"
