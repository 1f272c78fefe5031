"""SPEC §2: X3DH initiate/respond and the SMX1 envelope."""

from __future__ import annotations

import dataclasses

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from semafore.protocol import smx1, x3dh
from semafore.protocol.entropy import SeededEntropy
from semafore.protocol.errors import (
    DecryptionFailed,
    InvalidKey,
    InvalidSignature,
    UnknownPrekey,
)
from semafore.protocol.keys import DeviceKeys, PreKeyBundle, PublicSignedPrekey
from semafore.protocol.primitives import X25519KeyPair

# An X25519 point of order 8 (RFC 7748 / Wycheproof "low order" case).
SMALL_ORDER = bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800")


@pytest.fixture
def alice() -> DeviceKeys:
    return DeviceKeys.generate(SeededEntropy("alice"))


@pytest.fixture
def bob() -> DeviceKeys:
    return DeviceKeys.generate(SeededEntropy("bob"), opk_count=3)


def _ephemeral() -> X25519KeyPair:
    return X25519KeyPair.generate(SeededEntropy("ek"), "ephemeral_key")


@pytest.mark.cites("SPEC §2 r3")
@pytest.mark.parametrize("opk", ["opk-1", None])
def test_both_sides_derive_the_same_secrets(
    alice: DeviceKeys, bob: DeviceKeys, opk: str | None
) -> None:
    bundle = bob.bundle("bob", "phone", opk)
    sent = x3dh.initiate(alice.identity, "alice:laptop", bundle, _ephemeral())
    got = x3dh.respond(
        bob,
        "bob:phone",
        alice.identity.ik.public,
        alice.identity.sik.public,
        "alice:laptop",
        sent.ephemeral_public,
        sent.spk_key_id,
        sent.opk_key_id,
    )
    assert (got.sk, got.ad, got.rk0, got.dh) == (sent.sk, sent.ad, sent.rk0, sent.dh)
    assert len(sent.dh) == (4 if opk else 3)


@pytest.mark.cites("SPEC §2 r1")
def test_signature_is_verified_before_any_dh(
    alice: DeviceKeys, bob: DeviceKeys, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[object] = []
    original = X25519KeyPair.dh_parsed  # every DH goes through here

    def counting_dh(self: X25519KeyPair, public: X25519PublicKey) -> bytes:
        calls.append(public)
        return original(self, public)

    monkeypatch.setattr(X25519KeyPair, "dh_parsed", counting_dh)
    bundle = bob.bundle("bob", "phone", "opk-0")
    forged = dataclasses.replace(
        bundle,
        spk=PublicSignedPrekey(bundle.spk.key_id, bundle.spk.public, bytes(64)),
    )
    with pytest.raises(InvalidSignature):
        x3dh.initiate(alice.identity, "alice:laptop", forged, _ephemeral())
    assert calls == []
    x3dh.initiate(alice.identity, "alice:laptop", bundle, _ephemeral())
    assert len(calls) == 4


@pytest.mark.cites("SPEC §2 r2")
def test_small_order_opk_is_invalid_key(alice: DeviceKeys, bob: DeviceKeys) -> None:
    bundle = bob.bundle("bob", "phone", "opk-0")
    assert bundle.opk is not None
    evil = dataclasses.replace(bundle, opk=dataclasses.replace(bundle.opk, public=SMALL_ORDER))
    with pytest.raises(InvalidKey):
        x3dh.initiate(alice.identity, "alice:laptop", evil, _ephemeral())


@pytest.mark.cites("SPEC §2 r2")
def test_small_order_ephemeral_is_invalid_key(alice: DeviceKeys, bob: DeviceKeys) -> None:
    with pytest.raises(InvalidKey):
        x3dh.respond(
            bob,
            "bob:phone",
            alice.identity.ik.public,
            alice.identity.sik.public,
            "alice:laptop",
            SMALL_ORDER,
            bob.spk.key_id,
            None,
        )


@pytest.mark.cites("SPEC §2 r9")
def test_unknown_prekeys(alice: DeviceKeys, bob: DeviceKeys) -> None:
    args = (bob, "bob:phone", alice.identity.ik.public, alice.identity.sik.public, "alice:laptop")
    ek = _ephemeral().public
    with pytest.raises(UnknownPrekey) as spk:
        x3dh.respond(*args, ek, "spk-404", None)
    assert spk.value.field == "spk_key_id"
    with pytest.raises(UnknownPrekey) as opk:
        x3dh.respond(*args, ek, bob.spk.key_id, "opk-404")
    assert opk.value.field == "opk_key_id"


@pytest.mark.cites("SPEC §2 r4")
def test_addresses_are_bound(alice: DeviceKeys, bob: DeviceKeys) -> None:
    """Unknown-key-share: the same keys under another address give another AD (SPEC §2)."""
    bundle: PreKeyBundle = bob.bundle("bob", "phone")
    sent = x3dh.initiate(alice.identity, "alice:laptop", bundle, _ephemeral())
    sealed = smx1.seal(
        sent.sk, sent.ad, sent.ephemeral_public, sent.spk_key_id, None, bytes(12), b"first frame"
    )
    relabelled = x3dh.respond(
        bob,
        "bob:phone",
        alice.identity.ik.public,
        alice.identity.sik.public,
        "mallory:laptop",
        sent.ephemeral_public,
        sent.spk_key_id,
        None,
    )
    assert relabelled.sk == sent.sk and relabelled.ad != sent.ad
    with pytest.raises(DecryptionFailed):
        smx1.open_envelope(smx1.parse(sealed), relabelled.sk, relabelled.ad)
    assert smx1.open_envelope(smx1.parse(sealed), sent.sk, sent.ad) == b"first frame"
