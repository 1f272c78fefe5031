"""Every registered key kind is found (issue #12 item 2): the executor registers every
secret the protocol reports (:mod:`semafore.protocol.secrets`), named by kind, so a leaky
client — a test double that ships the latest secret of one kind beside its ciphertext, so
the relay queues it and the wire carries it — fails a real scenario (real executor,
in-process relay), and the hit names that key kind, including the kinds only the protocol
sees (message, chain and AEAD keys, the X3DH SK and ephemeral key)."""

from __future__ import annotations

import logging

import pytest

from semafore.client.device import Device
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

    def remember(kind: str, value: bytes) -> None:  # what the leaky client ships
        latest[kind] = value

    original = Device.encrypt

    def leaky(self: Device, address: str, plaintext: bytes, entropy: Entropy) -> bytes:
        body = original(self, address, plaintext, entropy)
        return body + b"|" + encode(chain, latest[kind]) if kind in latest else body

    monkeypatch.setattr(Device, "encrypt", leaky)
    logging.getLogger("semafore.server").setLevel(logging.ERROR)
    with secrets.reporting(remember):
        return executor.run_scenario(loads(SCENARIO, file="leaky-client.yaml"))


@pytest.mark.slow
@pytest.mark.parametrize("kind", secrets.KEY_KINDS)
def test_a_client_leaking_any_key_kind_fails_naming_it(
    kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The executor registers every secret the protocol reports, named by kind
    (``"message key #3"``); a client shipping one fails with a hit naming that kind."""
    chain = CHAINS[secrets.KEY_KINDS.index(kind) % len(CHAINS)]
    result = run(kind, chain, monkeypatch)
    assert result.verdict is Verdict.FAIL, kind
    named = [h for h in result.oracle_hits if h.kind == "key" and kind in h.label]
    assert named, [h.label for h in result.oracle_hits][:10]
    assert {h.tier for h in named} & {"store", "wire"}


@pytest.mark.slow
def test_an_honest_client_with_every_protocol_secret_registered_is_clean() -> None:
    collected: list[str] = []
    with secrets.reporting(lambda kind, value: collected.append(kind)):
        result = executor.run_scenario(loads(SCENARIO, file="leaky-client.yaml"))
    assert result.verdict is Verdict.PASS and not result.oracle_hits
    assert set(collected) >= {"message key", "chain key", "root key", "X3DH SK"}
    assert len(collected) > 20
