#!/usr/bin/env bash
# Creates .venv and installs the project with its pinned dependencies (constraints.txt).
# Idempotent: a second run only re-checks. Needs python3 >= 3.11 and a reachable package index.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.installed-$(cat pyproject.toml setup.py constraints.txt semafore/oracle/_fast.c | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -c constraints.txt -e '.[dev,fuzz,bench]'
  rm -f "$VENV"/.installed-*
  touch "$stamp"
fi
