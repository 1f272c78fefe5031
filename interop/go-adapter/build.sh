#!/usr/bin/env bash
# Build the Go platform adapter into interop/go-adapter/bin/goadapter (standard library only).
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p bin
CGO_ENABLED=0 go build -trimpath -o bin/goadapter ./cmd/goadapter
echo "built $(pwd)/bin/goadapter"
