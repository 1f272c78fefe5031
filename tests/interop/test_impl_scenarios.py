"""Scenario devices backed by adapters (issue #15 item 1): the Go adapter and the reference
adapter process as devices of a scenario on the embedded relay, next to reference clients.

A device of an adapter that shows a wrong plaintext makes delivery fail, and one that
cannot converge makes ``sessions_converge`` fail: the adapter's answers really are checked.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from simulator.assignment import Implementation
from simulator.executor import run_with_implementations
from simulator.report.model import Outcome, Verdict
from simulator.scenario.loader import load

from .conftest import GO_ADAPTER_DIR, go_tool

ROOT = Path(__file__).resolve().parents[2]
SIMULTANEOUS = ROOT / "scenarios" / "desync" / "simultaneous-initiation.yaml"

# the reference adapter, except that live.receive shows every plaintext with its first
# byte flipped and session.digest answers a digest of its own: a broken platform
BROKEN = """
import sys
from semafore.adapter import server
from semafore.adapter.ops import ReferenceAdapter

adapter = ReferenceAdapter()
receive, digest = adapter.ops["live.receive"], adapter.ops["session.digest"]

def flipped(args):
    out = receive(args)
    for item in out["messages"]:
        if item.get("plaintext"):
            text = item["plaintext"]
            item["plaintext"] = "%02x" % (int(text[:2], 16) ^ 1) + text[2:]
    return out

adapter.ops["live.receive"] = flipped
adapter.ops["session.digest"] = lambda args: {"digest": "00" * 32}
sys.exit(server.serve(sys.stdin.buffer, sys.stdout.buffer, adapter))
"""


def test_go_and_reference_devices_reach_the_reference_verdict(go_adapter: Path) -> None:
    scenario = load(SIMULTANEOUS)
    go = {"go": Implementation("go", str(go_adapter))}
    mixed = run_with_implementations(scenario, implementations=go, strategy="round-robin")
    assert sorted(mixed.implementations.values()) == ["go", "reference"]
    assert mixed.verdict is Verdict.PASS, mixed.error or [a.summary for a in mixed.assertions]
    only_go = run_with_implementations(scenario, implementations=go, strategy="go")
    assert set(only_go.implementations.values()) == {"go"}
    assert only_go.verdict is Verdict.PASS


def test_a_broken_adapter_fails_delivery_and_convergence(tmp_path: Path) -> None:
    script = tmp_path / "broken_adapter.py"
    script.write_text(BROKEN)
    broken = {"broken": Implementation("broken", f"{sys.executable} {script}")}
    result = run_with_implementations(load(SIMULTANEOUS), implementations=broken,
                                      strategy="round-robin")
    outcomes = {a.kind: a.outcome for a in result.assertions}
    assert result.verdict is Verdict.FAIL
    assert outcomes["delivered_exactly_once"] is Outcome.VIOLATED
    assert outcomes["sessions_converge"] is Outcome.VIOLATED


def test_the_reference_adapter_process_is_a_device_like_any_other() -> None:
    impl = {"py": Implementation("py", f"{sys.executable} -m semafore.adapter")}
    result = run_with_implementations(load(SIMULTANEOUS), implementations=impl,
                                      strategy="py")
    assert result.verdict is Verdict.PASS
    assert set(result.implementations.values()) == {"py"}


@pytest.mark.parametrize("strategy", ["round-robin"])
def test_a_step_no_adapter_operation_covers_is_unsupported_not_a_pass(
        go_adapter: Path, strategy: str) -> None:
    result = run_with_implementations(
        load(ROOT / "scenarios" / "desync" / "reorder.yaml"),
        implementations={"go": Implementation("go", str(go_adapter))}, strategy=strategy)
    assert result.verdict is Verdict.UNSUPPORTED
    assert "skipped_keys_used" in (result.unsupported or "")


DESYNC = ROOT / "scenarios" / "desync"
RESTORE = DESYNC / "restore-from-older-backup.yaml"
CLONE = DESYNC / "cloned-device.yaml"


@pytest.fixture(scope="module")
def broken_go_adapter(go_adapter: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Go adapter built with -tags brokenrestore: its state export also saves the random
    source and import puts the old nonce counter back (live/broken_restore.go)."""
    out = tmp_path_factory.mktemp("broken") / "goadapter-brokenrestore"
    env = {**os.environ, "GOTOOLCHAIN": "local", "CGO_ENABLED": "0"}
    subprocess.run([go_tool(), "build", "-tags", "brokenrestore", "-o", str(out),
                    "./cmd/goadapter"], cwd=GO_ADAPTER_DIR, env=env, check=True,
                   capture_output=True, timeout=600)
    return out


@pytest.mark.parametrize("path", [RESTORE, CLONE], ids=lambda p: p.stem)
def test_go_devices_restore_and_clone_through_the_state_operations(
        go_adapter: Path, path: Path) -> None:
    result = run_with_implementations(
        load(path), implementations={"go": Implementation("go", str(go_adapter))},
        strategy="go")
    assert result.verdict is Verdict.PASS, [(a.kind, a.summary) for a in result.assertions]


@pytest.mark.parametrize("path", [RESTORE, CLONE], ids=lambda p: p.stem)
def test_a_go_build_restoring_the_old_nonce_counter_fails(
        broken_go_adapter: Path, path: Path) -> None:
    result = run_with_implementations(
        load(path), implementations={"go": Implementation("go", str(broken_go_adapter))},
        strategy="go")
    reuse = next(a for a in result.assertions if a.kind == "no_key_nonce_reuse")
    assert reuse.outcome is Outcome.VIOLATED
    assert result.verdict is Verdict.FAIL


def test_a_clone_across_implementations_is_unsupported_naming_the_step(
        go_adapter: Path) -> None:
    result = run_with_implementations(
        load(CLONE), implementations={"go": Implementation("go", str(go_adapter))},
        strategy="round-robin", seed=0)
    # round-robin puts consecutive devices on different implementations
    assert result.implementations["alice/phone"] != result.implementations["alice/tablet"]
    assert result.verdict is Verdict.UNSUPPORTED
    assert "step restore" in (result.unsupported or "")


def test_reference_adapter_devices_restore_through_the_state_operations() -> None:
    impl = {"py": Implementation("py", f"{sys.executable} -m semafore.adapter")}
    result = run_with_implementations(load(RESTORE), implementations=impl, strategy="py")
    assert result.verdict is Verdict.PASS, [(a.kind, a.summary) for a in result.assertions]
