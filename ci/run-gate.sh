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
# Project Wycheproof through the adapters' primitive operations, when a corpus is available.
WYCHEPROOF=${SEMAFORE_WYCHEPROOF_DIR:-../shared/wycheproof}
extra=()
if [ -f "$WYCHEPROOF/x25519_test.json" ]; then
  extra+=(--wycheproof "$WYCHEPROOF")
else
  echo "note: no Wycheproof corpus at $WYCHEPROOF (set SEMAFORE_WYCHEPROOF_DIR); primitive suite not run" >&2
fi
"$VENV/bin/semafore" vectors verify --json "$REPORTS/vectors.json"
"$VENV/bin/semafore" gate \
  --impl "reference=$VENV/bin/python -m semafore.adapter" \
  --config ci/gate.yaml \
  --junit "$REPORTS/gate.junit.xml" \
  --json "$REPORTS/gate.json" \
  ${extra[@]+"${extra[@]}"} \
  "$@"
