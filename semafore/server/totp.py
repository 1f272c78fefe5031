"""RFC 6238 TOTP (HMAC-SHA1, 30 s steps, 6 digits) with stdlib ``hmac`` — ADR-0161.

Verification accepts the current step and one step either side (clock skew) and returns the
matched step, so the caller can refuse a code whose step was already used (replay).
"""

from __future__ import annotations

import base64
import hmac
import struct
from urllib.parse import quote

STEP = 30
DIGITS = 6
SKEW_STEPS = 1


def hotp(secret: bytes, counter: int, digits: int = DIGITS) -> str:
    """RFC 4226 §5.3: dynamic truncation of HMAC-SHA1(secret, counter)."""
    mac = hmac.digest(secret, struct.pack(">Q", counter), "sha1")
    offset = mac[-1] & 0x0F
    code = int.from_bytes(mac[offset : offset + 4], "big") & 0x7FFFFFFF
    return str(code % 10**digits).zfill(digits)


def totp(secret: bytes, now: float) -> str:
    return hotp(secret, int(now // STEP))


def matching_step(secret: bytes, code: str, now: float) -> int | None:
    """The time step whose code equals ``code`` (constant-time compare), within the skew."""
    current = int(now // STEP)
    found = None
    for step in range(current - SKEW_STEPS, current + SKEW_STEPS + 1):
        if hmac.compare_digest(hotp(secret, step), code):
            found = step
    return found


def secret_base32(secret: bytes) -> str:
    return base64.b32encode(secret).decode("ascii").rstrip("=")


def provisioning_uri(secret: bytes, account: str, issuer: str = "SemaFore") -> str:
    label = quote(f"{issuer}:{account}")
    return (
        f"otpauth://totp/{label}?secret={secret_base32(secret)}&issuer={quote(issuer)}"
        f"&algorithm=SHA1&digits={DIGITS}&period={STEP}"
    )
