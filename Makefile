# Two entry points a fresh machine needs (README "Quick start"): `make demo` and `make test`.
# Each installs what it needs into .venv first (scripts/bootstrap.sh).
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: bootstrap demo test lint fuzz bench vectors mutation
bootstrap:
	bash scripts/bootstrap.sh

demo: bootstrap
	$(VENV)/bin/semafore demo

test: bootstrap
	bash scripts/test.sh

lint: bootstrap
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache

fuzz: bootstrap
	$(PY) -m semafore.fuzz --runs 200000 --target all

bench: bootstrap
	$(PY) benchmarks/bench_protocol.py

vectors: bootstrap
	$(VENV)/bin/semafore vectors generate
	$(VENV)/bin/semafore vectors verify

# Mutation score of semafore/protocol (docs/mutation.md); long, not part of `make test` or CI.
# MUTANTS="name ..." re-checks just those mutants against the current tests.
mutation: bootstrap
	bash scripts/mutation.sh $(MUTANTS)
