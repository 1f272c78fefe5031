"""The primitive floor: the cheapest composition of exactly the primitive calls SPEC requires.

No protocol code: no parsing beyond slicing, no error mapping, no bookkeeping beyond the chain
keys and counters the next call needs, no serialisable state. What remains is what any
implementation of SPEC §2/§3 must pay for, so a protocol's figure divided by the floor is its
overhead. HMAC is stdlib ``hmac.digest`` (OpenSSL one-shot); HKDF comes in two flavours, one
built on ``hmac.digest`` and one from ``cryptography``, and the benchmark measures both and
composes the floor with the faster (the issue's rule: the floor is not padded). X25519,
Ed25519 and AES-256-GCM come from ``cryptography``.

Per SPEC §3 one message costs: ``KDF_CK`` (2 HMACs), the message-key HKDF (extract + expand),
a 12-byte random nonce, one AES-256-GCM seal or open over ``AD || header``. A DH ratchet step
(ping-pong: every received message carries a new ratchet key) adds on the receiver one X25519
(old key, new remote), ``KDF_RK`` (HKDF, L = 64), a fresh key pair, a second X25519 and a
second ``KDF_RK``. X3DH (SPEC §2) costs the initiator one Ed25519 verify, one ephemeral key
pair, four X25519 and one HKDF; the responder four X25519 and one HKDF.
"""

from __future__ import annotations

import hmac
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

ZERO32 = bytes(32)
F32 = b"\xff" * 32
INFO_X3DH = b"SemaFore-X3DH-v1"
INFO_ROOT = b"SemaFore-DR-v1-root"
INFO_RATCHET = b"SemaFore-DR-v1-ratchet"
INFO_MSG = b"SemaFore-DR-v1-msg"
SPK_SIG_PREFIX = b"SemaFore-SPK-v1"

Kdf = Callable[[bytes, bytes, bytes], bytes]
"""``(ikm, salt, info) -> okm`` with a fixed output length."""

# The same one-shot OpenSSL HMAC the protocol calls (what ``hmac.digest`` calls underneath),
# so the floor is never slower than ours by a Python wrapper frame per HMAC.
try:
    from _hashlib import hmac_digest as _digest
except ImportError:  # pragma: no cover
    _digest = hmac.digest  # type: ignore[assignment]
_urandom = os.urandom
_pack = struct.Struct(">II").pack


# --- HKDF flavours --------------------------------------------------------------------------


def hkdf32_hmac(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    """RFC 5869 HKDF-SHA256, L = 32, on ``hmac.digest``: extract + one expand block."""
    return _digest(_digest(salt, ikm, "sha256"), info + b"\x01", "sha256")


def hkdf64_hmac(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    """RFC 5869 HKDF-SHA256, L = 64, on ``hmac.digest``: extract + two expand blocks."""
    prk = _digest(salt, ikm, "sha256")
    t1 = _digest(prk, info + b"\x01", "sha256")
    return t1 + _digest(prk, t1 + info + b"\x02", "sha256")


_SHA256 = hashes.SHA256()


def hkdf32_cryptography(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    """HKDF-SHA256, L = 32, from ``cryptography``."""
    return HKDF(_SHA256, 32, salt, info).derive(ikm)


def hkdf64_cryptography(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    """HKDF-SHA256, L = 64, from ``cryptography``."""
    return HKDF(_SHA256, 64, salt, info).derive(ikm)


@dataclass(frozen=True)
class HkdfFlavour:
    """One HKDF implementation, as the two output lengths the protocol uses."""

    name: str
    hkdf32: Kdf
    hkdf64: Kdf


HKDF_HMAC = HkdfFlavour("hmac.digest", hkdf32_hmac, hkdf64_hmac)
HKDF_CRYPTOGRAPHY = HkdfFlavour("cryptography", hkdf32_cryptography, hkdf64_cryptography)
HKDF_FLAVOURS = (HKDF_HMAC, HKDF_CRYPTOGRAPHY)


def hkdf_steps(flavour: HkdfFlavour) -> Callable[[], object]:
    """One step = the HKDF work of one ping-pong message (one L=32 and two L=64 derivations)."""
    ikm = _urandom(32)
    salt = _urandom(32)
    h32, h64 = flavour.hkdf32, flavour.hkdf64

    def step() -> object:
        h64(ikm, salt, INFO_RATCHET)
        h64(ikm, salt, INFO_RATCHET)
        return h32(ikm, ZERO32, INFO_MSG)

    return step


# --- Double Ratchet floor (SPEC §3) ---------------------------------------------------------


class FloorParty:
    """The bare minimum one side keeps: root key, chain keys, own ratchet key, counters."""

    __slots__ = ("ckr", "cks", "dhs", "dhs_pub", "nr", "ns", "pn", "rk")

    def __init__(self, rk: bytes, dhs: X25519PrivateKey) -> None:
        self.rk = rk
        self.dhs = dhs
        self.dhs_pub = dhs.public_key().public_bytes_raw()
        self.cks = b""
        self.ckr = b""
        self.ns = 0
        self.nr = 0
        self.pn = 0


def floor_seal(sender: FloorParty, plaintext: bytes, ad: bytes, flavour: HkdfFlavour) -> bytes:
    """One DR_V1 frame from the current sending chain: KDF_CK, message HKDF, nonce, seal."""
    ck = sender.cks
    sender.cks = _digest(ck, b"\x02", "sha256")
    key = flavour.hkdf32(_digest(ck, b"\x01", "sha256"), ZERO32, INFO_MSG)
    nonce = _urandom(12)
    header = b"DRV1" + sender.dhs_pub + _pack(sender.pn, sender.ns) + nonce
    sender.ns += 1
    return header + AESGCM(key).encrypt(nonce, plaintext, ad + header)


def floor_open(receiver: FloorParty, frame: bytes, ad: bytes, flavour: HkdfFlavour) -> bytes:
    """Open a frame of the current receiving chain (no DH step)."""
    ck = receiver.ckr
    receiver.ckr = _digest(ck, b"\x02", "sha256")
    key = flavour.hkdf32(_digest(ck, b"\x01", "sha256"), ZERO32, INFO_MSG)
    receiver.nr += 1
    return AESGCM(key).decrypt(frame[44:56], frame[56:], ad + frame[:56])


def floor_open_ratchet(
    receiver: FloorParty, frame: bytes, ad: bytes, flavour: HkdfFlavour
) -> bytes:
    """Open a frame carrying a new ratchet key: the full DH ratchet step, then open."""
    remote = X25519PublicKey.from_public_bytes(frame[4:36])
    h64 = flavour.hkdf64
    out = h64(receiver.dhs.exchange(remote), receiver.rk, INFO_RATCHET)
    rk = out[:32]
    receiver.ckr = out[32:]
    dhs = X25519PrivateKey.generate()
    receiver.dhs = dhs
    receiver.dhs_pub = dhs.public_key().public_bytes_raw()
    out = h64(dhs.exchange(remote), rk, INFO_RATCHET)
    receiver.rk = out[:32]
    receiver.cks = out[32:]
    receiver.pn = receiver.ns
    receiver.ns = 0
    receiver.nr = 0
    return floor_open(receiver, frame, ad, flavour)


def floor_pair(
    sk: bytes, spk: X25519PrivateKey, flavour: HkdfFlavour
) -> tuple[FloorParty, FloorParty]:
    """Alice and Bob after X3DH (SPEC §3 initialisation): Bob's first ratchet key is his SPK."""
    rk0 = flavour.hkdf32(sk, ZERO32, INFO_ROOT)
    alice = FloorParty(rk0, X25519PrivateKey.generate())
    out = flavour.hkdf64(alice.dhs.exchange(spk.public_key()), rk0, INFO_RATCHET)
    alice.rk, alice.cks = out[:32], out[32:]
    bob = FloorParty(rk0, spk)
    return alice, bob


def oneway_step(
    alice: FloorParty, bob: FloorParty, plaintext: bytes, ad: bytes, flavour: HkdfFlavour
) -> Callable[[], bytes]:
    """One-way chain: every step is one frame Alice → Bob in the same sending chain.

    Bob must already hold Alice's current receiving chain (see :func:`prime`).
    """

    def step() -> bytes:
        return floor_open(bob, floor_seal(alice, plaintext, ad, flavour), ad, flavour)

    return step


def pingpong_step(
    alice: FloorParty, bob: FloorParty, plaintext: bytes, ad: bytes, flavour: HkdfFlavour
) -> Callable[[], bytes]:
    """Ping-pong: sides alternate, so every received frame carries a new ratchet key."""
    order = [alice, bob]

    def step() -> bytes:
        sender, receiver = order
        order.reverse()
        return floor_open_ratchet(receiver, floor_seal(sender, plaintext, ad, flavour), ad, flavour)

    return step


def prime(alice: FloorParty, bob: FloorParty, ad: bytes, flavour: HkdfFlavour) -> None:
    """Alice's first frame (Bob ratchets onto her key), so one-way steps start steady."""
    floor_open_ratchet(bob, floor_seal(alice, b"prime", ad, flavour), ad, flavour)


# --- X3DH floor (SPEC §2) -------------------------------------------------------------------


@dataclass(frozen=True)
class X3dhInputs:
    """Both devices' key material as raw bytes / parsed private keys, as a bundle delivers it."""

    ik_a: X25519PrivateKey
    ik_a_pub: bytes
    ik_b: X25519PrivateKey
    ik_b_pub: bytes
    sik_b_pub: bytes
    spk_b: X25519PrivateKey
    spk_b_pub: bytes
    spk_key_id: bytes
    spk_sig: bytes
    opk_b: X25519PrivateKey
    opk_b_pub: bytes


def x3dh_step(inputs: X3dhInputs, flavour: HkdfFlavour) -> Callable[[], bytes]:
    """One X3DH initiate + respond with an OPK: verify, EK, 4 DHs + HKDF on each side."""
    h32 = flavour.hkdf32
    i = inputs
    key_id_len = struct.pack(">H", len(i.spk_key_id))

    def step() -> bytes:
        # Initiator (Alice): verify the SPK signature before any DH.
        Ed25519PublicKey.from_public_bytes(i.sik_b_pub).verify(
            i.spk_sig, SPK_SIG_PREFIX + key_id_len + i.spk_key_id + i.spk_b_pub + i.ik_b_pub
        )
        ek = X25519PrivateKey.generate()
        ek_pub = ek.public_key().public_bytes_raw()
        spk = X25519PublicKey.from_public_bytes(i.spk_b_pub)
        sk_a = h32(
            F32
            + i.ik_a.exchange(spk)
            + ek.exchange(X25519PublicKey.from_public_bytes(i.ik_b_pub))
            + ek.exchange(spk)
            + ek.exchange(X25519PublicKey.from_public_bytes(i.opk_b_pub)),
            ZERO32,
            INFO_X3DH,
        )
        # Responder (Bob).
        ek_remote = X25519PublicKey.from_public_bytes(ek_pub)
        sk_b = h32(
            F32
            + i.spk_b.exchange(X25519PublicKey.from_public_bytes(i.ik_a_pub))
            + i.ik_b.exchange(ek_remote)
            + i.spk_b.exchange(ek_remote)
            + i.opk_b.exchange(ek_remote),
            ZERO32,
            INFO_X3DH,
        )
        if sk_a != sk_b:  # pragma: no cover - would mean the floor computes the wrong thing
            raise AssertionError("floor X3DH disagrees")
        return sk_b

    return step


def x3dh_inputs(spk_key_id: bytes = b"spk-0") -> X3dhInputs:
    """Fresh key material for both devices, with a valid SPK signature (SPEC §1)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    def pub(key: X25519PrivateKey) -> bytes:
        return key.public_key().public_bytes_raw()

    ik_a, ik_b, spk_b, opk_b = (X25519PrivateKey.generate() for _ in range(4))
    sik_b = Ed25519PrivateKey.generate()
    signed = (
        SPK_SIG_PREFIX + struct.pack(">H", len(spk_key_id)) + spk_key_id + pub(spk_b) + pub(ik_b)
    )
    return X3dhInputs(
        ik_a=ik_a,
        ik_a_pub=pub(ik_a),
        ik_b=ik_b,
        ik_b_pub=pub(ik_b),
        sik_b_pub=sik_b.public_key().public_bytes_raw(),
        spk_b=spk_b,
        spk_b_pub=pub(spk_b),
        spk_key_id=spk_key_id,
        spk_sig=sik_b.sign(signed),
        opk_b=opk_b,
        opk_b_pub=pub(opk_b),
    )
