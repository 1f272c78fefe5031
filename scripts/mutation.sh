#!/usr/bin/env bash
# `make mutation` (docs/mutation.md): mutmut over semafore/protocol/ with the fast protocol
# tests ([tool.mutmut] in pyproject.toml), then the score and every surviving mutant.
# Not part of scripts/test.sh or CI: a full run takes 30-60 min of one core.
# Bounded for a shared machine: nice 19, one mutant child at a time, one run at a time.
# MUTATION_MIN (default 95) is the detected % below which this exits non-zero.
# Every run starts from an empty mutants/: mutmut keeps a cached verdict even when tests were
# added since (a survivor stays a survivor), so a resumed run could under-report. Arguments
# are mutant names to re-check against the current tests, keeping the rest of the cache
# (e.g. the survivors listed by the last run); MUTATION_RESUME=1 finishes an interrupted run.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
# mutmut runs the tests from mutants/, so the Wycheproof default (../shared next to the
# checkout) must be resolved here; a missing directory only skips those tests.
export SEMAFORE_WYCHEPROOF_DIR=${SEMAFORE_WYCHEPROOF_DIR:-$PWD/../shared/wycheproof}
exec 9>"${TMPDIR:-/tmp}/semafore-mutation.lock"
if ! flock -n 9; then
  echo "another mutation run is in progress (${TMPDIR:-/tmp}/semafore-mutation.lock)" >&2
  exit 1
fi
if [ "$#" -eq 0 ] && [ "${MUTATION_RESUME:-0}" != "1" ]; then
  rm -rf mutants
fi
# Example tests before property tests in each mutant's run (tests/protocol/mutation_order.py):
# the same verdicts, but a killed mutant rarely waits for a 200-example Hypothesis test.
export PYTEST_ADDOPTS="${PYTEST_ADDOPTS:-} -p tests.protocol.mutation_order"
nice -n 19 "$VENV/bin/mutmut" run --max-children 1 "$@"
"$VENV/bin/mutmut" export-cicd-stats >/dev/null
"$VENV/bin/mutmut" results --all true >mutants/results.txt
"$VENV/bin/python" scripts/mutation_score.py --stats mutants/mutmut-cicd-stats.json \
  --results mutants/results.txt --min "${MUTATION_MIN:-95}"
