#!/usr/bin/env bash
# The whole test suite: lint, types, then pytest (every tier, including the slow one).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
export PATH="$PWD/$VENV/bin:$PATH"
ruff check .
mypy
pytest -q "$@"
