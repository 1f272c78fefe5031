#!/usr/bin/env bash
# The whole test suite: install the real backends (idempotent, <1 s when present), lint,
# types, then pytest — every tier, including the slow, backend, containers and interop ones.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
bash scripts/install-backends.sh --docker
export PATH="$PWD/$VENV/bin:$PATH"
ruff check .
mypy
pytest -q "$@"
