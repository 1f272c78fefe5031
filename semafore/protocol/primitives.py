"""The five primitives SemaFore depends on (seed §1.2), with canonical errors.

Thin and fast on purpose: HMAC is stdlib ``hmac.digest`` (OpenSSL one-shot), HKDF is RFC 5869
built on it, X25519/Ed25519/AES-256-GCM come from ``cryptography``. Every failure maps to a
SPEC §5 error: an all-zero X25519 output (small-order point) is ``InvalidKey``, a bad Ed25519
signature ``InvalidSignature``, a bad GCM tag ``DecryptionFailed``.
"""

from __future__ import annotations

import hmac

try:  # the C function behind stdlib ``hmac.digest``, minus one Python call per HMAC
    from _hashlib import hmac_digest as _hmac_digest
except ImportError:  # pragma: no cover - non-OpenSSL CPython builds
    _hmac_digest = hmac.digest  # type: ignore[assignment]

from cryptography.exceptions import InvalidSignature as _CryptoInvalidSignature
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.asymmetric.x25519 import (
    X25519PrivateKey,
    X25519PublicKey,
)
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from semafore.protocol.entropy import Entropy
from semafore.protocol.errors import DecryptionFailed, InvalidKey, InvalidSignature
from semafore.protocol.secrets import drawn as report_drawn  # pragma: no mutate

KEY_LEN = 32
NONCE_LEN = 12
TAG_LEN = 16
ZERO32 = bytes(32)


hmac_digest = _hmac_digest
"""``hmac_digest(key, msg, "sha256")``: stdlib one-shot HMAC (what ``hmac.digest`` calls)."""


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    return _hmac_digest(key, data, "sha256")


def hkdf(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    """HKDF-SHA256 (RFC 5869); an empty salt means 32 zero bytes (§2.2)."""
    if not 0 < length <= 255 * 32:
        raise ValueError(f"HKDF length {length} out of range")
    prk = _hmac_digest(salt or ZERO32, ikm, "sha256")
    if length <= 32:
        return _hmac_digest(prk, info + b"\x01", "sha256")[:length]
    out = b""
    block = b""
    counter = 1
    while len(out) < length:
        block = _hmac_digest(prk, block + info + bytes((counter,)), "sha256")
        out += block
        counter += 1
    return out[:length]


def _check_len(value: bytes, length: int, what: str) -> None:
    if len(value) != length:
        raise InvalidKey(f"{what} must be {length} bytes, got {len(value)}", field=what)


class X25519KeyPair:
    """An X25519 key pair; keeps the parsed OpenSSL key so repeated DHs cost one call."""

    __slots__ = ("_key", "private", "public")

    def __init__(self, private: bytes, public: bytes, key: X25519PrivateKey | None = None) -> None:
        # ``key`` is parsed lazily: loading persisted state must not pay for an OpenSSL parse
        # of every ratchet key it will never use.
        self.private = private
        self.public = public
        self._key = key

    @classmethod
    def from_private(cls, private: bytes) -> X25519KeyPair:
        _check_len(private, KEY_LEN, "x25519_private")
        key = X25519PrivateKey.from_private_bytes(private)
        return cls(private, key.public_key().public_bytes_raw(), key)

    @classmethod
    def generate(cls, entropy: Entropy, purpose: str) -> X25519KeyPair:
        pair = cls.from_private(entropy.random_bytes(KEY_LEN, purpose))
        report_drawn(purpose, pair.private)  # pragma: no mutate
        return pair

    def dh(self, public: bytes) -> bytes:
        """X25519(self, public); the all-zero output (small-order point) is ``InvalidKey``."""
        return self.dh_parsed(parse_x25519_public(public))

    def dh_parsed(self, public: X25519PublicKey) -> bytes:
        """:meth:`dh` with a public key parsed once by :func:`parse_x25519_public` (X3DH
        uses one remote key in up to three DHs)."""
        key = self._key
        if key is None:
            key = self._key = X25519PrivateKey.from_private_bytes(self.private)
        try:
            shared = key.exchange(public)
        except ValueError as exc:  # OpenSSL refuses the all-zero shared secret
            raise InvalidKey("X25519 output is all-zero (small-order public key)") from exc
        if shared == ZERO32:  # pragma: no cover - defence in depth if the backend changes
            raise InvalidKey("X25519 output is all-zero (small-order public key)")
        return shared

    def __eq__(self, other: object) -> bool:
        return isinstance(other, X25519KeyPair) and hmac.compare_digest(self.private, other.private)

    def __hash__(self) -> int:
        return hash(self.public)

    def __repr__(self) -> str:
        return f"X25519KeyPair(public={self.public.hex()})"


def parse_x25519_public(public: bytes) -> X25519PublicKey:
    if len(public) != KEY_LEN:
        raise InvalidKey(f"public key must be 32 bytes, got {len(public)}", field="public_key")
    return X25519PublicKey.from_public_bytes(public)


def x25519(private: bytes, public: bytes) -> bytes:
    """One-shot X25519 with canonical errors."""
    return X25519KeyPair.from_private(private).dh(public)


def x25519_public(private: bytes) -> bytes:
    return X25519KeyPair.from_private(private).public


class Ed25519KeyPair:
    """An Ed25519 signing key pair (RFC 8032); ``private`` is the 32-byte seed."""

    __slots__ = ("_key", "private", "public")

    def __init__(self, private: bytes) -> None:
        _check_len(private, KEY_LEN, "ed25519_private")
        self.private = private
        self._key = Ed25519PrivateKey.from_private_bytes(private)
        self.public = self._key.public_key().public_bytes_raw()

    @classmethod
    def generate(cls, entropy: Entropy, purpose: str) -> Ed25519KeyPair:
        pair = cls(entropy.random_bytes(KEY_LEN, purpose))
        report_drawn(purpose, pair.private)  # pragma: no mutate
        return pair

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Ed25519KeyPair) and hmac.compare_digest(
            self.private, other.private
        )

    def __hash__(self) -> int:
        return hash(self.public)

    def __repr__(self) -> str:
        return f"Ed25519KeyPair(public={self.public.hex()})"


def ed25519_verify(public: bytes, signature: bytes, message: bytes) -> None:
    """Raise ``InvalidSignature`` unless ``signature`` is valid (strict RFC 8032, S < L)."""
    if len(public) != KEY_LEN:
        raise InvalidSignature(f"signing key must be 32 bytes, got {len(public)}", field="sik")
    if len(signature) != 64:
        raise InvalidSignature(f"signature must be 64 bytes, got {len(signature)}", field="sig")
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, message)
    except (_CryptoInvalidSignature, ValueError) as exc:
        raise InvalidSignature("Ed25519 signature does not verify", field="sig") from exc


def _check_aead(key: bytes, nonce: bytes) -> None:
    # AESGCM would also take AES-128/192 keys and other nonce sizes: SemaFore uses neither.
    if len(key) != KEY_LEN:
        raise InvalidKey(f"AES-256-GCM key must be 32 bytes, got {len(key)}", field="key")
    if len(nonce) != NONCE_LEN:
        raise DecryptionFailed(f"nonce must be 12 bytes, got {len(nonce)}", field="nonce")


def aead_seal(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """AES-256-GCM; returns ciphertext || 16-byte tag."""
    _check_aead(key, nonce)
    return AESGCM(key).encrypt(nonce, plaintext, aad)


def aead_open(key: bytes, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
    """AES-256-GCM open; any failure (tag, length) is ``DecryptionFailed``."""
    _check_aead(key, nonce)
    if len(ciphertext) < TAG_LEN:
        raise DecryptionFailed("ciphertext shorter than the 16-byte tag", field="ciphertext")
    try:
        return AESGCM(key).decrypt(nonce, ciphertext, aad)
    except (InvalidTag, ValueError) as exc:
        raise DecryptionFailed("AES-256-GCM tag does not verify", field="tag") from exc
