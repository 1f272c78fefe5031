"""Shared fixtures: the committed vectors as gate cases, and adapter command lines."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest

from semafore.gate.cases import GateCase, cases_for
from semafore.gate.runner import Impl
from semafore.vectors.files import load_documents

ROOT = Path(__file__).resolve().parents[2]
FAULTY = ROOT / "tests" / "adapters" / "faulty_adapter.py"


def python_command(*args: str | Path) -> str:
    return " ".join(shlex.quote(str(a)) for a in (sys.executable, *args))


def reference() -> Impl:
    return Impl("reference", python_command("-m", "semafore.adapter"))


def faulty(name: str, fault: str, *extra: str | Path) -> Impl:
    return Impl(name, python_command(FAULTY, "--fault", fault, *extra))


@pytest.fixture(scope="session")
def gate_cases() -> list[GateCase]:
    return cases_for(load_documents(ROOT / "vectors"))
