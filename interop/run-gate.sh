#!/usr/bin/env bash
# CI interop gate with the second implementation: build the Go adapter, then run
# ci/run-gate.sh (vectors verify + gate, Wycheproof when a corpus is present) with
# reference × go. Extra arguments go to `semafore gate`.
#
#   interop/run-gate.sh                 # reports in $GATE_REPORTS (default build/gate/)
#
# Exit status: that of ci/run-gate.sh (0 pass, 1 any divergence, 2 usage), or the build's.
set -euo pipefail
cd "$(dirname "$0")/.."
export GATE_LIVE=${GATE_LIVE:-0}  # the Go adapter's live ops are in progress: no live gate yet
interop/go-adapter/build.sh
exec ci/run-gate.sh --impl "go=interop/go-adapter/bin/goadapter" "$@"
