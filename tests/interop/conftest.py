"""Build the Go adapter once per test session (go's build cache keeps rebuilds cheap).

Locally a machine without a Go toolchain skips these tests; in CI (``CI=true``) a missing
toolchain or a failed build is a failure, never a skip: the gate must not silently lose its
second implementation.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GO_ADAPTER_DIR = ROOT / "interop" / "go-adapter"
GO_ADAPTER_BIN = GO_ADAPTER_DIR / "bin" / "goadapter"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"Go adapter unavailable in CI: {reason}")
    pytest.skip(f"Go adapter unavailable: {reason}")


def go_tool() -> str:
    go = shutil.which("go")
    if go is None:
        _unavailable("no `go` toolchain on PATH (Go >= 1.26 needed)")
        raise AssertionError("unreachable")
    return go


@pytest.fixture(scope="session")
def go_adapter() -> Path:
    go_tool()
    proc = subprocess.run(
        [str(GO_ADAPTER_DIR / "build.sh")],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if proc.returncode != 0:
        _unavailable(f"build.sh exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    assert GO_ADAPTER_BIN.is_file()
    return GO_ADAPTER_BIN
