"""SPEC §1: signed prekeys bind key_id and IK; bundles verify."""

from __future__ import annotations

import dataclasses

import pytest

from semafore.protocol.entropy import SeededEntropy
from semafore.protocol.errors import InvalidSignature, MalformedEnvelope
from semafore.protocol.keys import DeviceKeys, PublicSignedPrekey, encode_key_id, verify_spk


@pytest.fixture
def keys() -> DeviceKeys:
    return DeviceKeys.generate(SeededEntropy("keys"), opk_count=2)


@pytest.mark.cites("SPEC §1 r3")
def test_bundle_signature_verifies(keys: DeviceKeys) -> None:
    keys.bundle("alice", "phone", "opk-0").verify()


@pytest.mark.cites("SPEC §1 r3")
def test_relabelled_key_id_is_rejected(keys: DeviceKeys) -> None:
    bundle = keys.bundle("alice", "phone")
    relabelled = dataclasses.replace(
        bundle, spk=PublicSignedPrekey("spk-9", bundle.spk.public, bundle.spk.signature)
    )
    with pytest.raises(InvalidSignature):
        relabelled.verify()


@pytest.mark.cites("SPEC §1 r3", "ADR-0053")
def test_foreign_identity_key_is_rejected(keys: DeviceKeys) -> None:
    other = DeviceKeys.generate(SeededEntropy("mallory"))
    spk = keys.spk
    with pytest.raises(InvalidSignature):
        verify_spk(
            keys.identity.sik.public,
            spk.key_id,
            spk.keypair.public,
            other.identity.ik.public,
            spk.signature,
        )


@pytest.mark.cites("SPEC §1 r2")
@pytest.mark.parametrize("bad", ["", "x" * 256, "a\nb", "\x00", "\u0085"])
def test_key_id_rules(bad: str) -> None:
    with pytest.raises(MalformedEnvelope) as info:
        encode_key_id(bad, "spk.key_id")
    assert info.value.field == "spk.key_id"


@pytest.mark.cites("SPEC §1 r2")
def test_key_id_accepts_non_ascii_and_max_length() -> None:
    assert encode_key_id("ключ-🔑") == "ключ-🔑".encode()
    assert len(encode_key_id("é" * 127 + "x")) == 255
