"""Build the Go adapter once per test session (go's build cache keeps rebuilds cheap).

Locally a machine without a Go toolchain skips these tests; in CI (``CI=true``) a missing
toolchain or a failed build is a failure, never a skip: the gate must not silently lose its
second implementation.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
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
    """$GO, else `go` on PATH, else the tarball location (as build.sh resolves it)."""
    go = os.environ.get("GO") or shutil.which("go")
    if go is None and Path("/usr/local/go/bin/go").is_file():
        go = "/usr/local/go/bin/go"
    if go is None:
        _unavailable("no Go toolchain (>= 1.24): set GO or put `go` on PATH")
        raise AssertionError("unreachable")
    return go


@pytest.fixture(scope="session")
def go_adapter() -> Path:
    go = go_tool()
    proc = subprocess.run(
        [str(GO_ADAPTER_DIR / "build.sh")],
        env={**os.environ, "GO": go},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if proc.returncode != 0:
        _unavailable(f"build.sh exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    assert GO_ADAPTER_BIN.is_file()
    return GO_ADAPTER_BIN


class Adapter:
    """One long-lived adapter process spoken to line by line."""

    def __init__(self, command: list[str]) -> None:
        self.proc = subprocess.Popen(
            command,
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._next = 0

    def raw(self, line: str) -> dict[str, object]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        answer: dict[str, object] = json.loads(self.proc.stdout.readline())
        return answer

    def call(self, op: str, **args: object) -> dict[str, object]:
        self._next += 1
        answer = self.raw(json.dumps({"id": self._next, "op": op, "args": args}))
        assert answer["id"] == self._next
        return answer

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        assert self.proc.wait(timeout=10) == 0


@pytest.fixture
def go(go_adapter: Path) -> Iterator[Adapter]:
    adapter = Adapter([str(go_adapter)])
    yield adapter
    adapter.close()
