"""SPEC §1: every operation that takes or emits a key id validates it — signing an SPK,
initiating X3DH, writing and parsing SMX1 — so no implementation emits an envelope that a
conforming parser rejects. (test_keys.py checks the rule itself on ``encode_key_id``.)"""

from __future__ import annotations

import dataclasses
import struct

import pytest

from semafore.protocol import smx1, x3dh
from semafore.protocol.entropy import SeededEntropy
from semafore.protocol.errors import MalformedEnvelope
from semafore.protocol.keys import DeviceKeys, sign_spk
from semafore.protocol.primitives import X25519KeyPair

BAD = "spk\u0085next"  # C1 control NEL: valid UTF-8, still a Unicode control (Cc)


@pytest.fixture
def bob() -> DeviceKeys:
    return DeviceKeys.generate(SeededEntropy("bob"))


@pytest.mark.cites("SPEC §1 r2")
def test_signing_an_spk_refuses_a_control_character(bob: DeviceKeys) -> None:
    with pytest.raises(MalformedEnvelope) as info:
        sign_spk(bob.identity.sik, BAD, bob.spk.keypair.public, bob.identity.ik.public)
    assert info.value.field == "spk.key_id"


@pytest.mark.cites("SPEC §1 r2")
def test_initiating_x3dh_refuses_a_bundle_with_a_control_character(bob: DeviceKeys) -> None:
    bundle = bob.bundle("bob", "phone")
    bad = dataclasses.replace(bundle, spk=dataclasses.replace(bundle.spk, key_id=BAD))
    alice = DeviceKeys.generate(SeededEntropy("alice"))
    ephemeral = X25519KeyPair.generate(SeededEntropy("ek"), "ephemeral_key")
    with pytest.raises(MalformedEnvelope):
        x3dh.initiate(alice.identity, "alice:phone", bad, ephemeral)


@pytest.mark.cites("SPEC §1 r2")
def test_smx1_is_neither_written_nor_parsed_with_a_control_character() -> None:
    with pytest.raises(MalformedEnvelope) as written:
        smx1.encode_header(bytes(32), "spk-0", "opk\x00")
    assert written.value.field == "opk_key_id"
    raw = BAD.encode()
    data = (b"SMX1\x00" + bytes(32) + struct.pack(">H", len(raw)) + raw + b"\x00\x00"
            + bytes(12 + 16))
    with pytest.raises(MalformedEnvelope) as parsed:
        smx1.parse(data)
    assert parsed.value.field == "spk_key_id"
