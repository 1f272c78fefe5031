"""The oracle is not blind end to end (issue 5): a deliberately leaking client — one that
ships the plaintext, or a private key, beside its ciphertext — makes a scenario run by the real
executor against the real relay fail, and the report names where the leak was found (the
envelope queued on the relay for an offline device, the wire capture). The leak is injected
by patching the client's encrypt in this test only; nothing in the product has a leak
switch."""

from __future__ import annotations

import logging
import textwrap
from collections.abc import Callable

import pytest

from semafore.client.device import Device
from semafore.protocol.entropy import Entropy
from simulator.report import ScenarioResult, Verdict, reason
from simulator.scenario import loads

SCENARIO = """\
version: 1
name: leak-probe
cites: ["SPEC §8"]
seed: 31
users:
  - {id: alice, devices: [phone]}
  - {id: bob, devices: [phone]}
steps:
  - compromise: {kind: server, as: root}
  - compromise: {kind: network, as: tap}
  - device_offline: {device: bob/phone}
  - send: {from: alice/phone, to: bob, label: secret}
  - sync: {}
  - assert: {adversary_decrypts_nothing: {adversary: root}}
  - assert: {oracle_clean: {}}
"""


def run_with(
    leak: Callable[[Device, bytes], bytes], monkeypatch: pytest.MonkeyPatch
) -> ScenarioResult:
    from simulator.executor import run_scenario

    original = Device.encrypt

    def leaky(self: Device, address: str, plaintext: bytes, entropy: Entropy) -> bytes:
        return original(self, address, plaintext, entropy) + leak(self, plaintext)

    monkeypatch.setattr(Device, "encrypt", leaky)
    logging.getLogger("semafore.server").setLevel(logging.ERROR)
    return run_scenario(loads(textwrap.dedent(SCENARIO), file="leak-probe.yaml"))


@pytest.mark.slow
def test_honest_client_is_clean() -> None:
    from simulator.executor import run_scenario

    result = run_scenario(loads(SCENARIO, file="leak-probe.yaml"))
    assert result.verdict is Verdict.PASS, reason(result)
    assert not result.oracle_hits


@pytest.mark.cites("SPEC §8 r3")
@pytest.mark.slow
def test_plaintext_beside_the_ciphertext_fails_with_its_location(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    result = run_with(lambda _device, plaintext: plaintext, monkeypatch)
    assert result.verdict is Verdict.FAIL
    canaries = [h for h in result.oracle_hits if h.kind == "canary"]
    assert canaries, reason(result)
    assert all("message secret" in h.label for h in canaries)
    tiers = {h.tier for h in canaries}
    assert tiers == {"wire", "store"}, tiers  # sent up the wire, queued for offline bob/phone
    stored = next(h for h in canaries if h.tier == "store")
    assert "queues" in stored.location and "bob" in stored.location
    sent = next(h for h in canaries if h.tier == "wire")
    assert "alice:phone up" in sent.location and sent.encoding.startswith("base64")
    assert "oracle" in reason(result)


@pytest.mark.cites("SPEC §8 r1")
@pytest.mark.slow
def test_base64_private_key_beside_the_ciphertext_is_found(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import base64

    def leak(device: Device, _plaintext: bytes) -> bytes:
        return b"|" + base64.b64encode(device.keys.identity.ik.private)

    result = run_with(leak, monkeypatch)
    assert result.verdict is Verdict.FAIL
    keys = [h for h in result.oracle_hits if h.kind == "key"]
    assert keys and all(h.encoding.startswith("base64") for h in keys), result.oracle_hits[:5]
