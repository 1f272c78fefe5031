"""Typed client errors: every failure names what failed, so a scenario can report it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from semafore.client.client import SendResult


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


class RecipientsFailed(DeliveryFailed):
    """A message to several users reached some of them but not all (issue #11).

    Every recipient user was tried and the sync copy went out for the ones reached, so
    ``result`` is the message as sent; ``failures`` maps each user it did not reach to why.
    A message to one user raises that user's failure itself."""

    def __init__(self, result: SendResult, failures: dict[str, Exception]) -> None:
        super().__init__(
            f"message {result.message_id} did not reach {', '.join(sorted(failures))}",
            field="user_id",
        )
        self.result = result
        self.failures = failures
