#!/usr/bin/env bash
# `make mutation` (docs/mutation.md): mutmut over semafore/protocol/ with the fast protocol
# tests ([tool.mutmut] in pyproject.toml), then the score and every surviving mutant.
# Not part of scripts/test.sh or CI: a full run takes ~15 min on one core.
# Bounded for a shared machine: nice 19, one mutant child at a time, one run at a time.
# MUTATION_MIN (default 95) is the killed % below which this exits non-zero; arguments are
# passed to `mutmut run` (e.g. mutant names to re-check just those).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
# mutmut runs the tests from mutants/, so the Wycheproof default (../shared next to the
# checkout) must be resolved here; a missing directory only skips those tests.
export SEMAFORE_WYCHEPROOF_DIR=${SEMAFORE_WYCHEPROOF_DIR:-$PWD/../shared/wycheproof}
mkdir -p mutants
exec 9>mutants/.run.lock
if ! flock -n 9; then
  echo "another mutation run holds mutants/.run.lock" >&2
  exit 1
fi
nice -n 19 "$VENV/bin/mutmut" run --max-children 1 "$@"
"$VENV/bin/mutmut" export-cicd-stats >/dev/null
"$VENV/bin/mutmut" results --all true >mutants/results.txt
"$VENV/bin/python" scripts/mutation_score.py --stats mutants/mutmut-cicd-stats.json \
  --results mutants/results.txt --min "${MUTATION_MIN:-95}"
