"""Issue 5: the oracle is not blind to the *relay*. A deliberately leaking relay (test-only
``Settings.leak``) that logs a message's plaintext, or stores one envelope unencrypted, makes
the matching scenario fail, and the verdict names where the leak was found."""

from __future__ import annotations

from pathlib import Path

import pytest

from semafore.server.settings import Settings
from simulator.executor import run_scenario
from simulator.report import Verdict, reason
from simulator.scenario import load, loads

ROOT = Path(__file__).resolve().parents[2]

OFFLINE_RECIPIENT = """\
version: 1
name: leak-probe
cites: ["SPEC §8"]
seed: 41
users:
  - {id: alice, devices: [phone]}
  - {id: bob, devices: [phone]}
steps:
  - compromise: {kind: server, as: root}
  - device_offline: {device: bob/phone}
  - send: {from: alice/phone, to: bob, label: secret}
  - assert: {oracle_clean: {}}
"""


def test_leaking_relay_is_refused_outside_test_mode() -> None:
    with pytest.raises(ValueError, match="test_mode"):
        Settings(leak="log", leak_source=lambda _id: b"x")
    with pytest.raises(ValueError, match="leak_source"):
        Settings(leak="store", test_mode=True)
    with pytest.raises(ValueError, match="leak must be"):
        Settings(leak="sometimes", test_mode=True)


@pytest.mark.cites("SPEC §8 r4")
@pytest.mark.slow
def test_a_relay_that_logs_plaintext_fails_the_server_compromise_scenario() -> None:
    scenario = load(ROOT / "scenarios" / "threats" / "server-compromise.yaml")
    assert run_scenario(scenario).verdict is Verdict.PASS  # the honest relay is clean
    result = run_scenario(scenario, leak="log")
    assert result.verdict is Verdict.FAIL
    logged = [h for h in result.oracle_hits if h.kind == "canary" and h.tier == "log"]
    assert logged, reason(result)
    assert all(h.location.startswith("relay.log:line ") for h in logged)
    assert "oracle" in reason(result)


@pytest.mark.cites("SPEC §8 r4")
@pytest.mark.slow
def test_a_relay_that_stores_one_envelope_unencrypted_is_caught_in_the_store() -> None:
    result = run_scenario(loads(OFFLINE_RECIPIENT, file="leak-probe.yaml"), leak="store")
    assert result.verdict is Verdict.FAIL
    stored = [h for h in result.oracle_hits if h.kind == "canary" and h.tier == "store"]
    assert stored, result.oracle_hits
    assert any("queues" in h.location and "bob" in h.location for h in stored)
    assert all("message secret" in h.label for h in stored)
