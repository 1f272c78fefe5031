#!/usr/bin/env bash
# CI interop gate: verify the pinned vectors, run them against every platform adapter (the
# static gate), then make every pair of adapters converse through a relay (the live gate).
#
#   ci/run-gate.sh                                  # the reference adapter only
#   ci/run-gate.sh --impl ios="./adapters/ios/run"  # plus any NAME=COMMAND adapters
#
# Extra arguments are passed to `semafore gate`; the --impl ones also to `semafore gate live`.
# Reports land in $GATE_REPORTS (default build/gate/): vectors.json; gate.junit.xml and
# gate.json (static); live.junit.xml, live.json and live.html (live).
#
# Environment:
#   GATE_LIVE=0          skip the live gate (default 1: run it)
#   GATE_LIVE_RELAY      embedded (default: in-process relay, memory stores), local (real
#                        MongoDB/Redis/SeaweedFS from the local provider) or a relay URL
#   GATE_LIVE_ARGS       more `semafore gate live` options, word-split (against a relay URL:
#                        --org, --relay-mongo/-redis/-seaweed/-namespace, --relay-log,
#                        --require-source; see docs/gate.md)
#
# Exit status: 0 vectors and both gates pass, 1 a vector mismatch, a divergence/crash/timeout/
# unsupported/oracle failure or an expired config entry, 2 usage/setup error (the first
# non-zero status of vectors verify, static gate, live gate wins).
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
# The same implementations for the live gate: every --impl NAME=COMMAND of the arguments.
impls=(--impl "reference=$VENV/bin/python -m semafore.adapter")
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[i]}" in
    --impl) impls+=(--impl "${args[i + 1]:-}"); i=$((i + 1)) ;;
    --impl=*) impls+=(--impl "${args[i]#--impl=}") ;;
  esac
done

# The static gate needs verified vectors; the live gate does not, so it runs either way and
# CI gets every report it can.
status=0
"$VENV/bin/semafore" vectors verify --json "$REPORTS/vectors.json" || status=$?
if [ "$status" = "0" ]; then
  "$VENV/bin/semafore" gate \
    --impl "reference=$VENV/bin/python -m semafore.adapter" \
    --config ci/gate.yaml \
    --junit "$REPORTS/gate.junit.xml" \
    --json "$REPORTS/gate.json" \
    ${extra[@]+"${extra[@]}"} \
    "$@" || status=$?
else
  echo "error: vectors verify failed: static gate not run" >&2
fi

if [ "${GATE_LIVE:-1}" = "0" ]; then
  echo "note: GATE_LIVE=0: live gate not run" >&2
else
  read -r -a live_args <<< "${GATE_LIVE_ARGS:-}"
  live_status=0
  "$VENV/bin/semafore" gate live \
    "${impls[@]}" \
    --relay "${GATE_LIVE_RELAY:-embedded}" \
    --junit "$REPORTS/live.junit.xml" \
    --json "$REPORTS/live.json" \
    --html "$REPORTS/live.html" \
    ${live_args[@]+"${live_args[@]}"} || live_status=$?
  if [ "$status" = "0" ]; then
    status=$live_status
  fi
fi
exit "$status"
