"""The two published implementations the issue compares against, set up like ours.

``doubleratchet`` 1.3 (pure Python, async API) is configured with exactly SemaFore's
primitives and KDFs: X25519 ratchet keys; root chain ``HKDF(dh, salt = rk, info =
"SemaFore-DR-v1-ratchet", L = 64)`` (its ``kdf_hkdf``, which splits new root key / chain key
the way SPEC §3 does); message chain ``HMAC(ck, 0x01)`` / ``HMAC(ck, 0x02)`` (its
``kdf_separate_hmacs`` with the constant ``0x02 0x01``: the first output becomes the next
chain key); and an AES-256-GCM AEAD with the SPEC §3 message-key HKDF and a random 12-byte
nonce, written here because the package ships only AES-CBC + HMAC. Its crypto provider is
``cryptography``. The coroutines never suspend, so they are driven with ``send(None)``
instead of an event loop (no scheduler overhead is charged to it).

``vodozemac`` 0.10 is the Rust Olm implementation (its own primitives: X25519, HKDF-SHA256,
HMAC-SHA256 chains, AES-256-CBC + truncated HMAC); sessions are set up with one round trip
so both sides are past the pre-key stage before timing starts.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from doubleratchet import aead as dr_aead
from doubleratchet import double_ratchet as dr_double_ratchet
from doubleratchet.recommended import HashFunction
from doubleratchet.recommended import kdf_hkdf as dr_kdf_hkdf
from doubleratchet.recommended import kdf_separate_hmacs as dr_kdf_hmacs
from doubleratchet.recommended.crypto_provider_impl import CryptoProviderImpl
from doubleratchet.recommended.diffie_hellman_ratchet_curve25519 import (
    DiffieHellmanRatchet as Curve25519Ratchet,
)
from doubleratchet.types import EncryptedMessage, Header

T = TypeVar("T")
MAX_SKIP = 1000
MAX_SKIPPED_KEYS = 2000


def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends (doubleratchet's crypto is synchronous inside)."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coroutine.close()
    raise RuntimeError("coroutine suspended; it needs an event loop")


# --- doubleratchet 1.3, configured with SemaFore's primitives --------------------------------


class RootChainKdf(dr_kdf_hkdf.KDF):
    """``KDF_RK``: HKDF-SHA256 with the root key as salt, SPEC §3 info."""

    @staticmethod
    def _get_hash_function() -> HashFunction:
        return HashFunction.SHA_256

    @staticmethod
    def _get_info() -> bytes:
        return b"SemaFore-DR-v1-ratchet"


class MessageChainKdf(dr_kdf_hmacs.KDF):
    """``KDF_CK``: one HMAC-SHA256 per constant byte (``0x02`` → next ck, ``0x01`` → mk)."""

    @staticmethod
    def _get_hash_function() -> HashFunction:
        return HashFunction.SHA_256


MESSAGE_CHAIN_CONSTANT = b"\x02\x01"


class AesGcmAead(dr_aead.AEAD):
    """SPEC §3 message encryption: ``key = HKDF(mk, 0^32, "SemaFore-DR-v1-msg")``, random nonce."""

    @staticmethod
    async def _key(message_key: bytes) -> bytes:
        return await CryptoProviderImpl.hkdf_derive(
            hash_function=HashFunction.SHA_256,
            length=32,
            salt=bytes(32),
            info=b"SemaFore-DR-v1-msg",
            key_material=message_key,
        )

    @classmethod
    async def encrypt(cls, plaintext: bytes, key: bytes, associated_data: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + AESGCM(await cls._key(key)).encrypt(nonce, plaintext, associated_data)

    @classmethod
    async def decrypt(cls, ciphertext: bytes, key: bytes, associated_data: bytes) -> bytes:
        try:
            return AESGCM(await cls._key(key)).decrypt(
                ciphertext[:12], ciphertext[12:], associated_data
            )
        except InvalidTag as exc:
            raise dr_aead.AuthenticationFailedException("AES-GCM tag does not verify") from exc


class SemaForeDoubleRatchet(dr_double_ratchet.DoubleRatchet):
    """AAD = AD || a DR_V1-shaped header (magic, ratchet key, PN, N)."""

    @staticmethod
    def _build_associated_data(associated_data: bytes, header: Header) -> bytes:
        return (
            associated_data
            + b"DRV1"
            + header.ratchet_pub
            + struct.pack(">II", header.previous_sending_chain_length, header.sending_chain_length)
        )


_CONFIG: dict[str, Any] = {
    "diffie_hellman_ratchet_class": Curve25519Ratchet,
    "root_chain_kdf": RootChainKdf,
    "message_chain_kdf": MessageChainKdf,
    "message_chain_constant": MESSAGE_CHAIN_CONSTANT,
    "dos_protection_threshold": MAX_SKIP,
    "max_num_skipped_message_keys": MAX_SKIPPED_KEYS,
    "aead": AesGcmAead,
}


def doubleratchet_pair(
    shared_secret: bytes, ad: bytes
) -> tuple[SemaForeDoubleRatchet, SemaForeDoubleRatchet]:
    """Alice and Bob after one round trip (Bob's first ratchet key plays the SPK)."""
    spk = X25519PrivateKey.generate()
    alice, first = run_sync(
        SemaForeDoubleRatchet.encrypt_initial_message(
            shared_secret=shared_secret,
            recipient_ratchet_pub=spk.public_key().public_bytes_raw(),
            message=b"hello",
            associated_data=ad,
            **_CONFIG,
        )
    )
    bob, plaintext = run_sync(
        SemaForeDoubleRatchet.decrypt_initial_message(
            shared_secret=shared_secret,
            own_ratchet_priv=spk.private_bytes_raw(),
            message=first,
            associated_data=ad,
            **_CONFIG,
        )
    )
    if plaintext != b"hello":  # pragma: no cover
        raise AssertionError("doubleratchet set-up failed")
    reply = run_sync(bob.encrypt_message(b"reply", ad))
    run_sync(alice.decrypt_message(reply, ad))
    return alice, bob


async def _dr_pair(
    sender: SemaForeDoubleRatchet, receiver: SemaForeDoubleRatchet, plaintext: bytes, ad: bytes
) -> bytes:
    message: EncryptedMessage = await sender.encrypt_message(plaintext, ad)
    return await receiver.decrypt_message(message, ad)


def doubleratchet_oneway(shared_secret: bytes, ad: bytes, plaintext: bytes) -> Callable[[], bytes]:
    alice, bob = doubleratchet_pair(shared_secret, ad)

    def step() -> bytes:
        return run_sync(_dr_pair(alice, bob, plaintext, ad))

    return step


def doubleratchet_pingpong(
    shared_secret: bytes, ad: bytes, plaintext: bytes
) -> Callable[[], bytes]:
    order = list(doubleratchet_pair(shared_secret, ad))

    def step() -> bytes:
        sender, receiver = order
        order.reverse()
        return run_sync(_dr_pair(sender, receiver, plaintext, ad))

    return step


def doubleratchet_serialise(shared_secret: bytes, ad: bytes) -> Callable[[], object]:
    """Whole-state round trip through its JSON form (``json`` / ``from_json``)."""
    alice, _ = doubleratchet_pair(shared_secret, ad)

    def step() -> object:
        return SemaForeDoubleRatchet.from_json(alice.json, **_CONFIG)

    return step


# --- vodozemac 0.10 (Olm) ---------------------------------------------------------------------


def vodozemac_pair() -> tuple[Any, Any]:
    """Two Olm sessions after one round trip (pre-key message, then a normal reply)."""
    import vodozemac

    alice_account = vodozemac.Account()
    bob_account = vodozemac.Account()
    bob_account.generate_one_time_keys(1)
    one_time_key = next(iter(bob_account.one_time_keys.values()))
    bob_account.mark_keys_as_published()
    alice = alice_account.create_outbound_session(bob_account.curve25519_key, one_time_key)
    first = alice.encrypt(b"hello")
    pre_key = first.to_pre_key()
    if pre_key is None:  # pragma: no cover
        raise AssertionError("vodozemac's first message is not a pre-key message")
    bob, plaintext = bob_account.create_inbound_session(alice_account.curve25519_key, pre_key)
    if plaintext != b"hello":  # pragma: no cover
        raise AssertionError("vodozemac set-up failed")
    alice.decrypt(bob.encrypt(b"reply"))
    return alice, bob


def vodozemac_oneway(plaintext: bytes) -> Callable[[], bytes]:
    alice, bob = vodozemac_pair()

    def step() -> bytes:
        return bob.decrypt(alice.encrypt(plaintext))  # type: ignore[no-any-return]

    return step


def vodozemac_pingpong(plaintext: bytes) -> Callable[[], bytes]:
    order = list(vodozemac_pair())

    def step() -> bytes:
        sender, receiver = order
        order.reverse()
        return receiver.decrypt(sender.encrypt(plaintext))  # type: ignore[no-any-return]

    return step


def vodozemac_serialise() -> Callable[[], object]:
    """Whole-session round trip through its (encrypted) pickle."""
    import vodozemac

    alice, _ = vodozemac_pair()
    pickle_key = bytes(32)

    def step() -> object:
        return vodozemac.Session.from_pickle(alice.pickle(pickle_key), pickle_key)

    return step
