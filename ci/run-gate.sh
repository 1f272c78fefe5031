#!/usr/bin/env bash
# CI interop gate: verify the pinned vectors, then run them against every platform adapter.
#
#   ci/run-gate.sh                                  # the reference adapter only
#   ci/run-gate.sh --impl ios="./adapters/ios/run"  # plus any NAME=COMMAND adapters
#
# Extra arguments are passed to `semafore gate`. Reports land in $GATE_REPORTS (default
# build/gate/): gate.junit.xml for the CI system's test view, gate.json for tooling.
# Exit status: 0 pass, 1 divergence/crash/timeout/unsupported or expired config, 2 usage.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
REPORTS=${GATE_REPORTS:-build/gate}
mkdir -p "$REPORTS"
"$VENV/bin/semafore" vectors verify --json "$REPORTS/vectors.json"
"$VENV/bin/semafore" gate \
  --impl "reference=$VENV/bin/python -m semafore.adapter" \
  --config ci/gate.yaml \
  --junit "$REPORTS/gate.junit.xml" \
  --json "$REPORTS/gate.json" \
  "$@"
