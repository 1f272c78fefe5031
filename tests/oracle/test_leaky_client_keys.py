"""Every registered key kind is found (issue #12 item 2): with the protocol's secrets
registered (``Oracle.collecting_protocol_secrets``), a leaky client — a test double that
ships the latest secret of one kind beside its ciphertext, so the relay queues it and the
wire carries it — fails a real scenario (real executor, in-process relay), and the hit names
that key kind. The kinds only the protocol sees (message, chain and AEAD keys, the X3DH SK
and ephemeral key) are named by the registry's label. The executor's wiring is stood in for
here by a sink that registers into the executor's oracle."""

from __future__ import annotations

import logging

import pytest

from semafore.client.device import Device
from semafore.oracle import Oracle
from semafore.oracle.leaks import encode
from semafore.protocol import secrets
from semafore.protocol.entropy import Entropy
from simulator import executor
from simulator.report import ScenarioResult, Verdict
from simulator.scenario import loads

SCENARIO = """\
version: 1
name: leaky-client
cites: ["SPEC §8"]
seed: 29
users:
  - {id: alice, devices: [phone]}
  - {id: bob, devices: [phone]}
steps:
  - compromise: {kind: server, as: root}
  - send: {from: alice/phone, to: bob, label: m1}
  - sync: {}
  - send: {from: bob/phone, to: alice, label: m2}
  - sync: {}
  - device_offline: {device: bob/phone}
  - send: {from: alice/phone, to: bob, label: m3}
  - assert: {oracle_clean: {}}
"""
CHAINS = ["hex", "base64+gzip", "base32", "repr", "percent", "base85", "hex-colon+reversed"]
PROTOCOL_ONLY = ("message key", "chain key", "AEAD key", "X3DH SK", "X3DH ephemeral private")


def run(kind: str, chain: str, monkeypatch: pytest.MonkeyPatch) -> ScenarioResult:
    latest: dict[str, bytes] = {}
    oracles: list[Oracle] = []

    class Collecting(Oracle):
        def __init__(self) -> None:
            super().__init__()
            oracles.append(self)

    def register(kind: str, value: bytes) -> None:  # what the lead wires into the executor
        latest[kind] = value
        for oracle in oracles:
            oracle.register_key(f"{kind} (from the protocol)", value)

    original = Device.encrypt

    def leaky(self: Device, address: str, plaintext: bytes, entropy: Entropy) -> bytes:
        body = original(self, address, plaintext, entropy)
        return body + b"|" + encode(chain, latest[kind]) if kind in latest else body

    monkeypatch.setattr(Device, "encrypt", leaky)
    monkeypatch.setattr(executor, "Oracle", Collecting)
    logging.getLogger("semafore.server").setLevel(logging.ERROR)
    with secrets.reporting(register):
        return executor.run_scenario(loads(SCENARIO, file="leaky-client.yaml"))


@pytest.mark.slow
@pytest.mark.parametrize("kind", secrets.KEY_KINDS)
def test_a_client_leaking_any_key_kind_fails_naming_it(
    kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    chain = CHAINS[secrets.KEY_KINDS.index(kind) % len(CHAINS)]
    result = run(kind, chain, monkeypatch)
    assert result.verdict is Verdict.FAIL, kind
    named = [h for h in result.oracle_hits if h.kind == "key" and kind in h.label]
    assert named, [h.label for h in result.oracle_hits][:10]
    assert {h.tier for h in named} & {"store", "wire"}
    if kind in PROTOCOL_ONLY:  # only the protocol's registry knows these values
        assert any(h.label == f"{kind} (from the protocol)" for h in named)


@pytest.mark.slow
def test_an_honest_client_with_every_protocol_secret_registered_is_clean(
    monkeypatch: pytest.MonkeyPatch) -> None:
    oracles: list[Oracle] = []

    class Collecting(Oracle):
        def __init__(self) -> None:
            super().__init__()
            oracles.append(self)

    def register(kind: str, value: bytes) -> None:
        for oracle in oracles:
            oracle.register_key(f"{kind} (from the protocol)", value)

    monkeypatch.setattr(executor, "Oracle", Collecting)
    with secrets.reporting(register):
        result = executor.run_scenario(loads(SCENARIO, file="leaky-client.yaml"))
    assert result.verdict is Verdict.PASS and not result.oracle_hits
    assert sum(1 for s in oracles[0].secrets if "(from the protocol)" in s.label) > 20
