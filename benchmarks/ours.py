"""This implementation (``semafore.protocol``) set up for the same steps as the floor.

The ratchet is driven through its public API only: ``RatchetState.initiator`` /
``responder``, ``encrypt`` (with the production entropy source,
:class:`~semafore.protocol.entropy.SystemEntropy`) / ``decrypt``, ``serialize`` / ``parse``. X3DH is
``x3dh.initiate`` + ``x3dh.respond`` including the ephemeral key generation, with a bundle
that carries an OPK (four DHs per side, like the floor).
"""

from __future__ import annotations

from collections.abc import Callable

from semafore.protocol import x3dh
from semafore.protocol.entropy import SystemEntropy
from semafore.protocol.keys import DeviceKeys, IdentityKeys
from semafore.protocol.primitives import X25519KeyPair
from semafore.protocol.ratchet import RatchetState

ALICE = "alice:phone"
BOB = "bob:laptop"


def ratchet_pair(sk: bytes, ad: bytes) -> tuple[RatchetState, RatchetState]:
    """Alice and Bob after one round trip (Bob's SPK is his first ratchet key)."""
    entropy = SystemEntropy()
    spk = X25519KeyPair.generate(entropy, "spk")
    alice = RatchetState.initiator(sk, ad, spk.public, entropy)
    bob = RatchetState.responder(sk, ad, spk)
    if bob.decrypt(alice.encrypt(b"hello", entropy)) != b"hello":  # pragma: no cover
        raise AssertionError("ratchet set-up failed")
    alice.decrypt(bob.encrypt(b"reply", entropy))
    return alice, bob


def ratchet_oneway(sk: bytes, ad: bytes, plaintext: bytes) -> Callable[[], bytes]:
    alice, bob = ratchet_pair(sk, ad)
    entropy = SystemEntropy()
    encrypt, decrypt = alice.encrypt, bob.decrypt

    def step() -> bytes:
        return decrypt(encrypt(plaintext, entropy))

    return step


def ratchet_pingpong(sk: bytes, ad: bytes, plaintext: bytes) -> Callable[[], bytes]:
    order = list(ratchet_pair(sk, ad))
    entropy = SystemEntropy()

    def step() -> bytes:
        sender, receiver = order
        order.reverse()
        return receiver.decrypt(sender.encrypt(plaintext, entropy))

    return step


def ratchet_serialise(sk: bytes, ad: bytes) -> Callable[[], object]:
    """Whole-state round trip: ``RatchetState.parse(state.serialize())``."""
    alice, _ = ratchet_pair(sk, ad)
    parse = RatchetState.parse

    def step() -> object:
        return parse(alice.serialize())

    return step


def x3dh_step() -> Callable[[], bytes]:
    """One X3DH initiate (with EK generation) + respond, OPK present."""
    entropy = SystemEntropy()
    alice = IdentityKeys.generate(entropy)
    bob = DeviceKeys.generate(entropy, opk_count=1)
    bundle = bob.bundle("bob", "laptop", opk_key_id=next(iter(bob.opks)))
    ik_public, sik_public = alice.ik.public, alice.sik.public

    def step() -> bytes:
        ephemeral = X25519KeyPair.generate(entropy, "ephemeral_key")
        sent = x3dh.initiate(alice, ALICE, bundle, ephemeral)
        got = x3dh.respond(
            bob,
            BOB,
            ik_public,
            sik_public,
            ALICE,
            sent.ephemeral_public,
            sent.spk_key_id,
            sent.opk_key_id,
        )
        if got.sk != sent.sk:  # pragma: no cover
            raise AssertionError("X3DH disagrees")
        return got.sk

    return step
