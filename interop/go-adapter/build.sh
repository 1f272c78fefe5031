#!/usr/bin/env bash
# Build the Go platform adapter into interop/go-adapter/bin/goadapter (standard library only).
# Needs Go >= 1.24 (crypto/hkdf); uses $GO, else `go` on PATH, else /usr/local/go/bin/go.
# GOTOOLCHAIN defaults to "local": an old toolchain fails clearly instead of downloading one.
set -euo pipefail
cd "$(dirname "$0")"
GO=${GO:-$(command -v go || true)}
if [ -z "$GO" ] && [ -x /usr/local/go/bin/go ]; then
  GO=/usr/local/go/bin/go
fi
if [ -z "$GO" ]; then
  echo "build.sh: no Go toolchain (set GO=/path/to/go, or install Go >= 1.24)" >&2
  exit 127
fi
export GOTOOLCHAIN=${GOTOOLCHAIN:-local} CGO_ENABLED=0
mkdir -p bin
"$GO" build -trimpath -o bin/goadapter ./cmd/goadapter
echo "built $(pwd)/bin/goadapter with $("$GO" version)"
