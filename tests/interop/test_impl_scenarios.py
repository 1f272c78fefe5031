"""Scenario devices backed by adapters (issue #15 item 1): the Go adapter and the reference
adapter process as devices of a scenario on the embedded relay, next to reference clients.

A device of an adapter that shows a wrong plaintext makes delivery fail, and one that
cannot converge makes ``sessions_converge`` fail: the adapter's answers really are checked.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from simulator.assignment import Implementation
from simulator.executor import run_with_implementations
from simulator.report.model import Outcome, Verdict
from simulator.scenario.loader import load

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
            item["plaintext"] = "%02x" % (int(item["plaintext"][:2], 16) ^ 1) + item["plaintext"][2:]
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
