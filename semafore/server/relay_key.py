"""The relay's long-lived secret, kept across restarts (issue 13 F-14).

``semafore serve`` used to draw a fresh JWT key on every start, so every access token died
on restart. One 32-byte relay key now comes from ``SEMAFORE_RELAY_KEY`` (base64) or a key
file (created, mode 0600, if missing); the JWT signing key and the key sealing TOTP seeds at
rest (semafore.server.sealing) are derived from it with HKDF-SHA256 under distinct labels,
so neither secret ever serves the other's purpose.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

ENV_VAR = "SEMAFORE_RELAY_KEY"
KEY_BYTES = 32


class RelayKeyError(ValueError):
    """The configured relay key is unusable; the message names where it came from."""


def _decode(text: str, where: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise RelayKeyError(f"{where}: not base64") from exc
    if len(key) != KEY_BYTES:
        raise RelayKeyError(f"{where}: must decode to {KEY_BYTES} bytes, got {len(key)}")
    return key


def load_or_create(path: Path | None, environ: dict[str, str] | None = None) -> bytes | None:
    """The relay key: ``SEMAFORE_RELAY_KEY`` if set, else the file at ``path`` (written with a
    new random key, 0600, if it does not exist), else None (the caller draws a throwaway)."""
    env = os.environ if environ is None else environ
    if env.get(ENV_VAR):
        return _decode(env[ENV_VAR], ENV_VAR)
    if path is None:
        return None
    if not path.exists():
        key = secrets.token_bytes(KEY_BYTES)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(base64.b64encode(key).decode("ascii") + "\n")
        return key
    return _decode(path.read_text(encoding="ascii"), str(path))


def derive(relay_key: bytes, purpose: str) -> bytes:
    """A 32-byte subkey for ``purpose`` ("jwt", "totp-seal")."""
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None,
        info=f"semafore-relay-v1/{purpose}".encode(),
    ).derive(relay_key)
