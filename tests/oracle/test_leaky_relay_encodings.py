"""Leak injection for every encoding, end to end (issue #12 item 5): a test-only leaky relay
(``Settings.leak = "log:<chain>"`` / ``"store:<chain>"``) writes each message's plaintext,
through the encoding chain, into a log line or into the queued envelope of an offline
recipient; the real scenario executor, with the real in-process relay (embedded stores),
must fail the scenario and name the message. ``local`` backends (redis-server, weed,
FerretDB) are not installed on this machine; tests/backends runs them where they are."""

from __future__ import annotations

import logging

import pytest

from semafore.oracle.leaks import ENCODERS
from semafore.server.settings import Settings
from simulator.executor import run_scenario
from simulator.report import Verdict
from simulator.scenario import loads

OFFLINE_RECIPIENT = """\
version: 1
name: leak-probe
cites: ["SPEC §8"]
seed: 43
users:
  - {id: alice, devices: [phone]}
  - {id: bob, devices: [phone]}
steps:
  - compromise: {kind: server, as: root}
  - device_offline: {device: bob/phone}
  - send: {from: alice/phone, to: bob, label: secret}
  - assert: {oracle_clean: {}}
"""
# Upper- or lower-casing base64 of a whole plaintext loses the case of the canary's base64
# characters only; the lower-cased comparison still finds it.
CHAINS = [*sorted(ENCODERS), "base32+gzip", "base64+bz2+utf-16le", "hex+reversed+zlib",
          "percent+json", "ascii85+xz"]


@pytest.fixture(autouse=True)
def _quiet() -> None:
    logging.getLogger("semafore.server").setLevel(logging.ERROR)


@pytest.mark.slow
@pytest.mark.parametrize("where", ["log", "store"])
@pytest.mark.parametrize("chain", CHAINS)
def test_a_relay_leaking_through_any_encoding_fails_the_scenario(where: str, chain: str) -> None:
    result = run_scenario(loads(OFFLINE_RECIPIENT, file="leak-probe.yaml"), leak=f"{where}:{chain}")
    assert result.verdict is Verdict.FAIL, chain
    found = [h for h in result.oracle_hits if h.kind == "canary" and "message secret" in h.label]
    assert found, result.oracle_hits
    if where == "log":
        assert any(h.tier == "log" and h.location.startswith("relay.log:line ") for h in found)
    else:
        assert any("queues" in h.location and "bob" in h.location for h in found), found


def test_an_unknown_encoding_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="unknown encoding 'rot13'"):
        Settings(leak="log:base64+rot13", test_mode=True, leak_source=lambda _id: b"x")
    with pytest.raises(ValueError, match="leak must be"):
        Settings(leak="off:base64", test_mode=True)
