"""Client-side attachment encryption (ADR-0157: the relay only ever holds ciphertext).

A fresh random AES-256-GCM key per attachment; the blob is ``nonce(12) || ciphertext+tag``
and its SHA-256 is what the uploader declares and what the recipient checks *before*
decrypting. The key and the hash travel inside the E2E message (:mod:`content`).
"""

from __future__ import annotations

import hashlib
import hmac

from semafore.client.content import AttachmentPointer
from semafore.client.errors import AttachmentError
from semafore.protocol.entropy import Entropy
from semafore.protocol.errors import DecryptionFailed
from semafore.protocol.primitives import aead_open, aead_seal

AAD = b"SemaFore-attachment-v1"


def seal(plaintext: bytes, entropy: Entropy) -> tuple[bytes, bytes, bytes]:
    """Encrypt; returns ``(blob, key, sha256(blob))``. Draws "attachment_key" and "nonce"."""
    key = entropy.random_bytes(32, "attachment_key")
    nonce = entropy.random_bytes(12, "nonce")
    blob = nonce + aead_seal(key, nonce, plaintext, AAD)
    return blob, key, hashlib.sha256(blob).digest()


def open_blob(blob: bytes, pointer: AttachmentPointer) -> bytes:
    """Check the declared hash, then decrypt; :class:`AttachmentError` on any mismatch."""
    if not hmac.compare_digest(hashlib.sha256(blob).digest(), pointer.sha256):
        raise AttachmentError("ciphertext SHA-256 does not match the message", field="sha256")
    if len(blob) < 12 + 16:
        raise AttachmentError("attachment blob too short", field="blob")
    try:
        return aead_open(pointer.key, blob[:12], blob[12:], AAD)
    except DecryptionFailed as exc:
        raise AttachmentError("attachment AEAD tag does not verify", field="tag") from exc
