"""Request and response bodies of the relay API (the OpenAPI document is generated from them).

Bytes are standard base64 with padding (SPEC conventions, RFC 4648 §4), decoded strictly:
any other alphabet, missing padding or a wrong decoded length is a 422 naming the field.
Every request model forbids unknown fields, which is also how "no filename, no MIME type,
no plaintext metadata" is enforced for attachments (ADR-0157) and screenshots (ADR-0159).
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
)

from semafore.protocol.errors import MalformedEnvelope
from semafore.protocol.keys import encode_key_id

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
MESSAGE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
re_id = re.compile(ID_PATTERN)
B64_PATTERN = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64_decoder(length: int | None, max_length: int | None = None) -> Any:
    def decode(value: Any) -> bytes:
        if isinstance(value, bytes):  # built in Python (responses), not parsed from JSON
            raw = value
        elif not isinstance(value, str):
            raise ValueError("must be a base64 string")
        else:
            try:
                raw = base64.b64decode(value.encode("ascii"), validate=True)
            except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
                raise ValueError("not standard base64 with padding") from exc
        if length is not None and len(raw) != length:
            raise ValueError(f"must decode to {length} bytes, got {len(raw)}")
        if max_length is not None and len(raw) > max_length:
            raise ValueError(f"must decode to at most {max_length} bytes")
        if not raw and length is None:
            raise ValueError("must not be empty")
        return raw

    return decode


def _fixed_pattern(length: int) -> str:
    chars = 4 * ((length + 2) // 3)
    pad = (3 - length % 3) % 3
    return f"^[A-Za-z0-9+/]{{{chars - pad}}}{'=' * pad}$"


def _fixed_schema(length: int) -> WithJsonSchema:
    chars = 4 * ((length + 2) // 3)
    return WithJsonSchema(
        {
            "type": "string",
            "format": "byte",
            "pattern": _fixed_pattern(length),
            "minLength": chars,
            "maxLength": chars,
            "description": f"{length} bytes, standard base64 with padding",
        }
    )


def _var_schema(max_length: int) -> WithJsonSchema:
    return WithJsonSchema(
        {
            "type": "string",
            "format": "byte",
            "pattern": B64_PATTERN,
            "minLength": 4,
            "maxLength": 4 * ((max_length + 2) // 3),
            "description": f"1..{max_length} bytes, standard base64 with padding",
        }
    )


_B64_OUT = PlainSerializer(b64encode, return_type=str)


def _key_id(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    try:
        encode_key_id(value)
    except MalformedEnvelope as exc:
        raise ValueError(exc.detail) from exc
    return value


Key32 = Annotated[bytes, BeforeValidator(_b64_decoder(32)), _B64_OUT, _fixed_schema(32)]
Sig64 = Annotated[bytes, BeforeValidator(_b64_decoder(64)), _B64_OUT, _fixed_schema(64)]
Hash32 = Key32
MAX_ENVELOPE = 64 * 1024
EnvelopeBody = Annotated[
    bytes, BeforeValidator(_b64_decoder(None, MAX_ENVELOPE)), _B64_OUT, _var_schema(MAX_ENVELOPE)
]
KeyId = Annotated[str, BeforeValidator(_key_id), Field(min_length=1, max_length=255)]
Ident = Annotated[str, Field(pattern=ID_PATTERN, min_length=1, max_length=64)]
MessageId = Annotated[str, Field(pattern=MESSAGE_ID_PATTERN, min_length=1, max_length=128)]
RegistrationId = Annotated[int, Field(ge=1, le=2**31 - 1)]
RoleName = Literal["member", "admin"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- orgs and auth --------------------------------------------------------------------------


REFUSED_IN_NAMES = (
    (0x0000, 0x001F), (0x007F, 0x009F),  # C0/C1 controls: NUL, CR/LF, ESC of ANSI sequences
    (0x00AD, 0x00AD), (0x061C, 0x061C), (0x180E, 0x180E),  # soft hyphen, Arabic/Mongolian marks
    (0x200B, 0x200F),  # zero-width space/joiners, LRM/RLM
    (0x2028, 0x202E),  # line/paragraph separators, bidi embeddings and overrides
    (0x2060, 0x206F),  # word joiner, invisible operators, bidi isolates
    (0xE000, 0xF8FF), (0xFEFF, 0xFEFF), (0xFFF9, 0xFFFF),  # private use, BOM, specials
    (0xE0000, 0xE007F), (0xF0000, 0x10FFFF),  # tag characters, supplementary private use
)
"""Code points a display name may not hold (issue 13 F-13): a name can neither forge log or
terminal output (controls, line breaks) nor reorder or hide what a reader sees (bidi and
invisible format characters). One list: the validator and the OpenAPI pattern both use it.
(Lone surrogates are refused apart: they are not Unicode text, and no regex engine of the
OpenAPI tooling accepts them in a pattern.)"""


def _class_char(code: int) -> str:
    """A code point in a regex class, valid for Python ``re`` and ECMA-262 alike: BMP as a
    ``\\uXXXX`` escape (no lone surrogate ever sits in the served JSON), astral literal."""
    return f"\\u{code:04x}" if code <= 0xFFFF else chr(code)


NAME_PATTERN = (
    "^[^" + "".join(f"{_class_char(a)}-{_class_char(b)}" for a, b in REFUSED_IN_NAMES) + "]+$"
)
_NAME = re.compile(NAME_PATTERN)


def _display_name(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("a lone surrogate is not Unicode text") from exc
    if value and _NAME.fullmatch(value) is None:
        bad = next(
            ch for ch in value if any(a <= ord(ch) <= b for a, b in REFUSED_IN_NAMES)
        )
        raise ValueError(f"character U+{ord(bad):04X} is not allowed in a name")
    return value


DisplayName = Annotated[
    str,
    BeforeValidator(_display_name),
    Field(min_length=1, max_length=200),
    WithJsonSchema(
        {"type": "string", "minLength": 1, "maxLength": 200, "pattern": NAME_PATTERN,
         "description": "no control, bidi or invisible format characters (docs/server.md)"}
    ),
]


class SignupRequest(Strict):
    org_id: Ident
    name: DisplayName
    admin_user_id: Ident


class TotpEnrolmentOut(BaseModel):
    totp_secret: str = Field(description="base32 RFC 6238 secret (SHA-1, 30 s, 6 digits)")
    totp_uri: str


class SignupResponse(TotpEnrolmentOut):
    org_id: str
    admin_user_id: str


class OrgOut(BaseModel):
    org_id: str
    name: str
    plan: str
    seats: int


class SubscriptionRequest(Strict):
    plan: Literal["trial", "standard", "enterprise"]
    seats: int = Field(ge=1, le=1_000_000)


class MemberRequest(Strict):
    role: RoleName


class MemberOut(BaseModel):
    user_id: str
    role: RoleName
    joined_at: float | None = Field(description="null while an invitation is pending")
    status: Literal["member", "invited"] = Field(
        default="member",
        description="'invited' (202): the user belongs to another organisation and joins "
        "only by accepting from their own session (docs/server.md, Organisation isolation)",
    )


class InvitationOut(BaseModel):
    org_id: str
    role: RoleName
    invited_by: str
    invited_at: float
    expires_at: float


class InvitationsOut(BaseModel):
    invitations: list[InvitationOut]


class MembersOut(BaseModel):
    members: list[MemberOut]


class OtpRequest(Strict):
    org_id: Ident
    user_id: Ident


class LoginRequest(Strict):
    org_id: Ident
    user_id: Ident
    device_id: Ident
    otp: str = Field(pattern=r"^[0-9]{6}$")
    totp: str | None = Field(default=None, pattern=r"^[0-9]{6}$")


class RefreshRequest(Strict):
    refresh_token: str = Field(min_length=1, max_length=200)


class SwitchOrgRequest(Strict):
    org_id: Ident
    otp: str = Field(
        pattern=r"^[0-9]{6}$",
        description="a login code requested for (this org_id, you) from this address",
    )
    totp: str | None = Field(default=None, pattern=r"^[0-9]{6}$")


class TotpEnrolRequest(Strict):
    otp: str = Field(
        pattern=r"^[0-9]{6}$",
        description="a fresh login code requested for (the session's org, you)",
    )


AuditType = Literal[
    "signup",
    "subscription_change",
    "role_change",
    "membership_change",
    "screenshot_report",
    "broadcast",
    "device_added",
    "device_removed",
    "totp_enrolled",
]
"""Every audit event type (docs/audit-schema.md); the query filter accepts exactly these."""


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105 (a scheme name)
    expires_in: int
    org_id: str
    user_id: str
    device_id: str
    role: RoleName
    registration_id: int
    totp_enrolment_required: bool = False


class DeviceOut(BaseModel):
    device_id: str
    registration_id: int
    created_at: float


class DevicesOut(BaseModel):
    devices: list[DeviceOut]


# --- keys -----------------------------------------------------------------------------------


class SignedPrekeyIn(Strict):
    key_id: KeyId
    pub: Key32
    sig: Sig64


class OneTimePrekeyIn(Strict):
    key_id: KeyId
    pub: Key32


class KeyUpload(Strict):
    ik: Key32
    sik: Key32
    spk: SignedPrekeyIn
    opks: list[OneTimePrekeyIn] = Field(default_factory=list, max_length=100)


class OpkUpload(Strict):
    opks: list[OneTimePrekeyIn] = Field(min_length=1, max_length=100)


class KeyCount(BaseModel):
    opk_count: int
    spk_key_id: str | None


class SignedPrekeyOut(BaseModel):
    key_id: str
    pub: Key32
    sig: Sig64


class OneTimePrekeyOut(BaseModel):
    key_id: str
    pub: Key32


class DeviceBundle(BaseModel):
    """SPEC §1 key bundle plus the registration id senders quote back."""

    user_id: str
    device_id: str
    registration_id: int
    ik: Key32
    sik: Key32
    spk: SignedPrekeyOut
    opk: OneTimePrekeyOut | None


class BundlesOut(BaseModel):
    user_id: str
    devices: list[DeviceBundle]


class DeviceIdentity(BaseModel):
    """A device's long-term identity keys (SPEC §1) and registration id, nothing claimable."""

    user_id: str
    device_id: str
    registration_id: int
    ik: Key32
    sik: Key32


class IdentitiesOut(BaseModel):
    user_id: str
    devices: list[DeviceIdentity]


# --- messages -------------------------------------------------------------------------------


class EnvelopeIn(Strict):
    device_id: Ident
    registration_id: RegistrationId
    body: EnvelopeBody = Field(
        description="SMX1 or DR_V1 bytes, opaque to the relay; or, for every envelope of a "
        "send, a 36-byte SPEC §4 reset notice (SRS1 || ratchet key) to the device(s) it names"
    )


class SendRequest(Strict):
    message_id: MessageId
    envelopes: list[EnvelopeIn] = Field(min_length=1, max_length=64)


class DeliveryOut(BaseModel):
    device_id: str
    delivery_id: str


class SendResponse(BaseModel):
    message_id: str
    deliveries: list[DeliveryOut]


class EnvelopeOut(BaseModel):
    delivery_id: str
    message_id: str
    kind: Literal["message", "broadcast", "reset"] = Field(
        description="'reset': a SPEC §4 reset notice (SRS1 body), not a message"
    )
    sender_user_id: str
    sender_device_id: str
    body: EnvelopeBody
    envelope_hash: Hash32
    received_at: float


class EnvelopesOut(BaseModel):
    envelopes: list[EnvelopeOut]
    more: bool


class AckRequest(Strict):
    delivery_ids: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        min_length=1, max_length=500
    )


class AckResponse(BaseModel):
    acked: list[str]


class BroadcastRecipient(Strict):
    user_id: Ident
    envelopes: list[EnvelopeIn] = Field(min_length=1, max_length=64)


class BroadcastRequest(Strict):
    message_id: MessageId
    recipients: list[BroadcastRecipient] = Field(min_length=1, max_length=1000)


class BroadcastResponse(BaseModel):
    message_id: str
    recipients: int
    deliveries: int


# --- attachments and screenshots ------------------------------------------------------------


class AttachmentCreate(Strict):
    """Declared size and SHA-256 of the ciphertext, and who may download it. Nothing else."""

    size: int = Field(ge=1, le=2**40)
    sha256: Hash32
    recipients: list[Ident] = Field(default_factory=list, max_length=1000)


class AttachmentCreated(BaseModel):
    file_id: str
    max_size: int


class ScreenshotReport(Strict):
    """Hash-only forensic metadata (ADR-0159): never an image, never text."""

    peer_user_id: Ident
    screenshot_sha256: Hash32
    message_ids: list[MessageId] = Field(default_factory=list, max_length=100)
    captured_at: float = Field(ge=0, le=1e11)


class ReportCreated(BaseModel):
    report_id: str


# --- audit, retention, deliveries -----------------------------------------------------------


class AuditEventOut(BaseModel):
    schema_version: int
    event_id: str
    seq: int
    org_id: str
    event_type: str
    at: float
    actor_user_id: str | None
    actor_device_id: str | None
    subject_user_id: str | None
    details: dict[str, Any]


class AuditPage(BaseModel):
    events: list[AuditEventOut]
    next_after_seq: int | None


class RetentionIn(Strict):
    envelope_max_age: int | None = Field(default=None, ge=60, le=10 * 365 * 86400)
    attachment_max_age: int | None = Field(default=None, ge=60, le=10 * 365 * 86400)
    audit_max_age: int | None = Field(default=None, ge=60, le=10 * 365 * 86400)


class RetentionOut(RetentionIn):
    org_id: str


class DeliveryProofOut(BaseModel):
    delivery_id: str
    message_id: str
    envelope_hash: Hash32
    sender_user_id: str
    sender_device_id: str
    recipient_user_id: str
    recipient_device_id: str
    received_at: float
    delivered_at: float


class DeliveryPage(BaseModel):
    deliveries: list[DeliveryProofOut]
    next_after: str | None


class Health(BaseModel):
    status: Literal["ok"]
    test_mode: bool
