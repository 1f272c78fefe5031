"""Every derivation of SPEC §1–§3 recomputed from its formula with stdlib HMAC and raw
primitives, independent of ``semafore.protocol``.

The pinned vectors check the same bytes end to end, but only through the gate; these tests
name the rule each constant belongs to (info strings, salts, the ``0xFF×32`` prefix, u16
length fields, HMAC-SHA256 one-shot tags), so a changed label or layout fails here with the
SPEC formula next to it. Written for the mutation run (docs/mutation.md).
"""

from __future__ import annotations

import hashlib
import hmac
import struct

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from semafore.protocol import frame, smx1, x3dh
from semafore.protocol.entropy import SeededEntropy
from semafore.protocol.errors import MalformedEnvelope
from semafore.protocol.keys import DeviceKeys, spk_signed_message
from semafore.protocol.primitives import X25519KeyPair, hkdf, hmac_sha256, x25519, x25519_public
from semafore.protocol.ratchet import RatchetState, kdf_ck, kdf_rk, message_key

ZERO32 = bytes(32)


def _hmac(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def _hkdf(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 HKDF-SHA256, written out."""
    prk = _hmac(salt, ikm)
    okm, block = b"", b""
    for counter in range(1, -(-length // 32) + 1):
        block = _hmac(prk, block + info + bytes((counter,)))
        okm += block
    return okm[:length]


def _dh(private: bytes, public: bytes) -> bytes:
    key = X25519PrivateKey.from_private_bytes(private)
    return key.exchange(X25519PublicKey.from_public_bytes(public))


# -- the primitives against their RFC test vectors ------------------------------------------


def test_hmac_sha256_is_rfc_4231_case_2() -> None:
    tag = hmac_sha256(b"Jefe", b"what do ya want for nothing?")
    assert tag.hex() == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"


def test_hkdf_is_rfc_5869() -> None:
    case_1 = hkdf(b"\x0b" * 22, bytes(range(13)), bytes(range(0xF0, 0xFA)), 42)
    assert case_1.hex() == (
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    )
    case_3 = hkdf(b"\x0b" * 22, b"", b"", 42)  # no salt: HashLen zero bytes (§2.2)
    assert case_3.hex() == (
        "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"
    )


@pytest.mark.parametrize("length", [1, 31, 32, 33, 64, 65, 255 * 32])
def test_hkdf_output_of_any_allowed_length(length: int) -> None:
    assert hkdf(b"ikm", b"salt", b"info", length) == _hkdf(b"ikm", b"salt", b"info", length)


@pytest.mark.parametrize("length", [0, -1, 255 * 32 + 1])
def test_hkdf_refuses_lengths_rfc_5869_does_not_define(length: int) -> None:
    with pytest.raises(ValueError, match=f"HKDF length {length} out of range"):
        hkdf(b"ikm", b"salt", b"info", length)


def test_x25519_is_rfc_7748_section_6_1() -> None:
    alice = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
    bob_public = bytes.fromhex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
    assert x25519_public(alice).hex() == (
        "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
    )
    assert x25519(alice, bob_public).hex() == (
        "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"
    )


# -- SPEC §1: the signed prekey message -------------------------------------------------------


def test_spk_signature_message_is_domain_u16_key_id_spk_ik() -> None:
    spk, ik = b"\x01" * 32, b"\x02" * 32
    message = spk_signed_message("spk-ü", spk, ik)
    assert message == b"SemaFore-SPK-v1" + b"\x00\x06" + "spk-ü".encode() + spk + ik


# -- SPEC §2: X3DH ----------------------------------------------------------------------------


@pytest.mark.parametrize("opk", ["opk-0", None])
def test_x3dh_secrets_follow_spec_2(opk: str | None) -> None:
    alice = DeviceKeys.generate(SeededEntropy("kdf-alice"))
    bob = DeviceKeys.generate(SeededEntropy("kdf-bob"), opk_count=1)
    ephemeral = X25519KeyPair.generate(SeededEntropy("kdf-ek"), "ephemeral_key")
    bundle = bob.bundle("bob", "phone", opk)
    result = x3dh.initiate(alice.identity, "alice:laptop", bundle, ephemeral)

    dh = [
        _dh(alice.identity.ik.private, bob.spk.keypair.public),
        _dh(ephemeral.private, bob.identity.ik.public),
        _dh(ephemeral.private, bob.spk.keypair.public),
    ]
    if opk is not None:
        dh.append(_dh(ephemeral.private, bob.opks[opk].keypair.public))
    sk = _hkdf(b"\xff" * 32 + b"".join(dh), ZERO32, b"SemaFore-X3DH-v1", 32)
    ad = (
        alice.identity.ik.public
        + alice.identity.sik.public
        + bob.identity.ik.public
        + bob.identity.sik.public
        + b"\x00\x0calice:laptop"
        + b"\x00\x09bob:phone"
    )
    assert result.dh == tuple(dh)
    assert result.sk == sk
    assert result.ad == ad
    assert result.rk0 == _hkdf(sk, ZERO32, b"SemaFore-DR-v1-root", 32)
    assert (result.ephemeral_public, result.spk_key_id, result.opk_key_id) == (
        ephemeral.public,
        "spk-0",
        opk,
    )

    got = x3dh.respond(
        bob,
        "bob:phone",
        alice.identity.ik.public,
        alice.identity.sik.public,
        "alice:laptop",
        ephemeral.public,
        "spk-0",
        opk,
    )
    assert got == result


def test_shared_key_concatenates_the_dhs_after_the_ff_prefix() -> None:
    dh = (b"\x01" * 32, b"\x02" * 32, b"\x03" * 32, b"\x04" * 32)
    expected = _hkdf(b"\xff" * 32 + b"".join(dh), ZERO32, b"SemaFore-X3DH-v1", 32)
    assert x3dh.shared_key(dh) == expected
    assert x3dh.shared_key(dh[:3]) != expected


@pytest.mark.parametrize("size", [1, 127, 128, 32767, 32768, 65535])
def test_device_addresses_up_to_65535_bytes_are_bound_with_a_u16_length(size: int) -> None:
    ad = x3dh.associated_data(ZERO32, ZERO32, ZERO32, ZERO32, "a" * size, "b")
    assert ad[128:130] == struct.pack(">H", size)
    assert ad[130 : 130 + size] == b"a" * size
    assert ad[130 + size :] == b"\x00\x01b"


@pytest.mark.parametrize("address", ["", "a" * 65536])
def test_device_addresses_outside_1_to_65535_bytes_are_refused(address: str) -> None:
    with pytest.raises(MalformedEnvelope) as info:
        x3dh.associated_data(ZERO32, ZERO32, ZERO32, ZERO32, "b", address)
    assert info.value.field == "address_b"


def test_smx1_is_sealed_under_sk_with_header_and_ad_as_aad() -> None:
    sk, ad, ek, nonce = b"\x05" * 32, b"AD bytes", b"\x06" * 32, b"\x07" * 12
    data = smx1.seal(sk, ad, ek, "spk-1", "opk-2", nonce, b"first frame")
    header = b"SMX1\x01" + ek + b"\x00\x05spk-1\x00\x05opk-2"
    assert data[: len(header)] == header
    assert data[len(header) : len(header) + 12] == nonce
    assert AESGCM(sk).decrypt(nonce, data[len(header) + 12 :], header + ad) == b"first frame"


# -- SPEC §3: the Double Ratchet ----------------------------------------------------------------


def test_kdf_rk_is_hkdf_with_the_root_key_as_salt() -> None:
    rk, dh_out = b"\x11" * 32, b"\x22" * 32
    okm = _hkdf(dh_out, rk, b"SemaFore-DR-v1-ratchet", 64)
    assert kdf_rk(rk, dh_out) == (okm[:32], okm[32:])


def test_kdf_ck_and_the_message_key() -> None:
    ck = b"\x33" * 32
    assert kdf_ck(ck) == (_hmac(ck, b"\x01"), _hmac(ck, b"\x02"))
    mk = b"\x44" * 32
    assert message_key(mk) == _hkdf(mk, ZERO32, b"SemaFore-DR-v1-msg", 32)


def test_session_digest_is_sha256_of_label_rk_ad() -> None:
    state = RatchetState(b"\x55" * 32, b"the AD", X25519KeyPair(ZERO32, ZERO32))
    expected = hashlib.sha256(b"SemaFore-session-digest-v1" + b"\x55" * 32 + b"the AD").digest()
    assert state.digest() == expected


def _chain(sk: bytes, dhs_private: bytes, spk_public: bytes) -> tuple[bytes, bytes]:
    """SPEC §3 initialisation: ``RK, CKs = KDF_RK(RK0, X25519(DHs, SPK_B.pub))``."""
    rk0 = _hkdf(sk, ZERO32, b"SemaFore-DR-v1-root", 32)
    okm = _hkdf(_dh(dhs_private, spk_public), rk0, b"SemaFore-DR-v1-ratchet", 64)
    return okm[:32], okm[32:]


def test_first_frames_are_encrypted_as_spec_3_derives_them() -> None:
    sk, ad = b"\x66" * 32, b"session AD"
    entropy = SeededEntropy("kdf-ratchet")
    spk = X25519KeyPair.generate(entropy, "spk")
    alice = RatchetState.initiator(sk, ad, spk.public, entropy)
    _, ck = _chain(sk, alice.dhs.private, spk.public)
    for n in range(3):
        data = alice.encrypt(f"m{n}".encode(), entropy)
        header, body = data[:56], data[56:]
        assert header[:36] == b"DRV1" + alice.dhs.public
        assert header[36:44] == struct.pack(">II", 0, n)
        key = _hkdf(_hmac(ck, b"\x01"), ZERO32, b"SemaFore-DR-v1-msg", 32)
        assert AESGCM(key).decrypt(header[44:56], body, ad + header) == f"m{n}".encode()
        ck = _hmac(ck, b"\x02")


def test_a_frame_built_from_the_spec_formulas_decrypts() -> None:
    sk, ad = b"\x77" * 32, b"session AD"
    entropy = SeededEntropy("kdf-responder")
    spk = X25519KeyPair.generate(entropy, "spk")
    dhs = X25519KeyPair.generate(entropy, "ratchet_key")
    bob = RatchetState.responder(sk, ad, spk)
    _, ck = _chain(sk, dhs.private, spk.public)
    for _ in range(2):  # message 2: keys 0 and 1 are skipped and kept
        ck = _hmac(ck, b"\x02")
    nonce = b"\x08" * 12
    header = frame.encode_header(dhs.public, 0, 2, nonce)
    key = _hkdf(_hmac(ck, b"\x01"), ZERO32, b"SemaFore-DR-v1-msg", 32)
    data = header + AESGCM(key).encrypt(nonce, b"third", ad + header)
    assert bob.decrypt(data) == b"third"
    assert sorted(n for _, n in bob.skipped) == [0, 1]
    assert (bob.nr, bob.dhr, bob.cks) == (3, dhs.public, None)
