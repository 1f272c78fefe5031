"""Typed client errors: every failure names what failed, so a scenario can report it."""

from __future__ import annotations

from typing import Any


class ClientError(Exception):
    """Base of every client-side failure that is not a protocol error (SPEC §5)."""

    def __init__(self, detail: str, *, field: str | None = None) -> None:
        self.detail = detail
        self.field = field
        super().__init__(detail + (f" (field: {field})" if field else ""))


class MalformedContent(ClientError):
    """A decrypted plaintext that is not a valid content message; ``field`` names the part."""


class MalformedClientState(ClientError):
    """Persisted client state that cannot be loaded; ``field`` names the part."""


class AttachmentError(ClientError):
    """An attachment whose ciphertext hash or AEAD tag does not verify."""


class TransportError(ClientError):
    """The relay could not be reached (connection refused, reset, timed out)."""


class ServerRejected(ClientError):
    """The relay answered with an error status; ``code`` is its machine-readable code."""

    def __init__(self, status: int, code: str, detail: str, body: Any = None) -> None:
        super().__init__(f"HTTP {status} {code}: {detail}", field=code)
        self.status = status
        self.code = code
        self.body = body


class DeliveryFailed(ClientError):
    """A send kept failing after refreshing the device list (409/410) the allowed times."""
