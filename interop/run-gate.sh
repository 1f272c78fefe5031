#!/usr/bin/env bash
# CI interop gate with the second implementation: build the Go adapter, then run
# ci/run-gate.sh with reference × go: vectors verify, the static gate (Wycheproof when a
# corpus is present) and the live gate (every ordered pair of reference and go conversing
# through a relay, then the plaintext-absence oracle). Extra arguments go to `semafore gate`;
# GATE_LIVE=0 skips the live gate, GATE_LIVE_RELAY / GATE_LIVE_ARGS choose its relay and
# options (see ci/run-gate.sh).
#
#   interop/run-gate.sh                 # reports in $GATE_REPORTS (default build/gate/)
#
# Exit status: that of ci/run-gate.sh (0 pass, 1 any divergence, 2 usage), or the build's.
set -euo pipefail
cd "$(dirname "$0")/.."
interop/go-adapter/build.sh
exec ci/run-gate.sh --impl "go=interop/go-adapter/bin/goadapter" "$@"
