"""TOTP seeds sealed at rest (issue 13 F-11; ADR-0161).

The relay must read a TOTP seed back to verify codes, so it cannot hash it; it seals it with
AES-256-GCM under ``Settings.totp_key`` (a key from settings, never stored beside the data),
bound to the user id as associated data so a sealed seed copied onto another user's row does
not open. A reader of the store alone sees ``TS1 || nonce || ciphertext``.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"TS1\x00"
NONCE_BYTES = 12


class SealError(Exception):
    """A stored seed does not open under this key (wrong key, tampered, or another user's)."""


def _aad(user_id: str) -> bytes:
    return b"semafore-totp-seed-v1\x00" + user_id.encode("utf-8")


def seal(key: bytes, user_id: str, seed: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return MAGIC + nonce + AESGCM(key).encrypt(nonce, seed, _aad(user_id))


def unseal(key: bytes, user_id: str, stored: bytes) -> bytes:
    """The seed; :class:`SealError` if ``stored`` is not a seed sealed for ``user_id``."""
    if not stored.startswith(MAGIC) or len(stored) < len(MAGIC) + NONCE_BYTES + 16:
        raise SealError("not a sealed TOTP seed")
    nonce = stored[len(MAGIC) : len(MAGIC) + NONCE_BYTES]
    try:
        return AESGCM(key).decrypt(nonce, stored[len(MAGIC) + NONCE_BYTES :], _aad(user_id))
    except InvalidTag as exc:
        raise SealError("TOTP seed does not open under this key") from exc
