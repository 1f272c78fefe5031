"""One typed error hierarchy with the canonical names of SPEC §5.

Every error carries the canonical ``name`` (what vectors and adapters exchange), the
``field`` or condition that failed, and a human ``detail``. Nothing else in
:mod:`semafore.protocol` raises: a parser fed arbitrary bytes raises one of these or returns.
"""

from __future__ import annotations

from typing import ClassVar


class ProtocolError(Exception):
    """Base of every protocol failure; ``name`` is the SPEC §5 canonical name."""

    name: ClassVar[str] = "ProtocolError"

    def __init__(self, detail: str, *, field: str | None = None) -> None:
        self.detail = detail
        self.field = field
        super().__init__(f"{self.name}: {detail}" + (f" (field: {field})" if field else ""))


class MalformedEnvelope(ProtocolError):
    """SMX1/DR_V1 framing error; ``field`` names the offending field."""

    name = "MalformedEnvelope"


class UnsupportedVersion(ProtocolError):
    """A known family (SMX?/DRV?) with a version this implementation does not speak."""

    name = "UnsupportedVersion"


class InvalidSignature(ProtocolError):
    """The signed prekey signature does not verify with the bundle's SIK (SPEC §1)."""

    name = "InvalidSignature"


class InvalidKey(ProtocolError):
    """A key of the wrong size, or a DH that produced the all-zero output (small order)."""

    name = "InvalidKey"


class DecryptionFailed(ProtocolError):
    """The AES-256-GCM tag did not verify; no state changed."""

    name = "DecryptionFailed"


class DuplicateMessage(ProtocolError):
    """The frame's message key was already used (or discarded) in this session."""

    name = "DuplicateMessage"


class TooManySkipped(ProtocolError):
    """The frame would skip more than MAX_SKIP keys in one receiving chain (SPEC §3)."""

    name = "TooManySkipped"


class UnknownPrekey(ProtocolError):
    """An SMX1 names a signed or one-time prekey this device does not hold (SPEC §2)."""

    name = "UnknownPrekey"


class UntrustedIdentity(ProtocolError):
    """The remote device's identity keys differ from the trusted ones (SPEC §2, TOFU)."""

    name = "UntrustedIdentity"


class NoSession(ProtocolError):
    """No session exists (or none can send) for this remote device."""

    name = "NoSession"


class Unsupported(ProtocolError):
    """Adapters only: the operation is not implemented (SPEC §7)."""

    name = "Unsupported"


class MalformedState(ProtocolError):
    """Serialised session/device state that cannot be loaded; ``field`` names the part.

    Not a wire error (SPEC §5 lists wire errors only); it guards the persisted-state parser.
    """

    name = "MalformedState"


CANONICAL_ERRORS: dict[str, type[ProtocolError]] = {
    cls.name: cls
    for cls in (
        MalformedEnvelope,
        UnsupportedVersion,
        InvalidSignature,
        InvalidKey,
        DecryptionFailed,
        DuplicateMessage,
        TooManySkipped,
        UnknownPrekey,
        UntrustedIdentity,
        NoSession,
        Unsupported,
    )
}
"""SPEC §5 names, as vectors and adapters spell them."""
