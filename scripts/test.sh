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
# the import contracts of pyproject.toml [tool.importlinter] (docs/architecture.md "Layers")
lint-imports --no-cache
# Two xdist workers; tests sharing machine state (real backends, Docker, the Go build) stay on
# one of them, in order (tests/conftest.py). The schemathesis API-fuzzing modules run after, in
# one process: under xdist their per-operation tests collapse into a single item, so a serial
# run keeps every operation a test of its own. SEMAFORE_TEST_WORKERS=0 runs everything serially;
# arguments (paths, -k, -m) run just that selection.
WORKERS=${SEMAFORE_TEST_WORKERS:-2}
if [ "$WORKERS" = "0" ] || [ "$#" -gt 0 ]; then
  if [ "$WORKERS" = "0" ]; then pytest -q "$@"; else pytest -q -n "$WORKERS" --dist loadgroup "$@"; fi
else
  pytest -q -n "$WORKERS" --dist loadgroup \
    --ignore=tests/server/test_schemathesis.py --ignore=tests/server/test_schemathesis_slow.py
  pytest -q tests/server/test_schemathesis.py tests/server/test_schemathesis_slow.py
fi
