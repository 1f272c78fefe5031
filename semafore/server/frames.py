"""WebSocket ``send`` frames: a fast validator with the pydantic models as its oracle.

Every envelope a device sends over its socket goes through here, so the common case, a
well-formed message, is checked by hand: exact JSON types, the same ``Ident``/``MessageId``
patterns, lengths and strict base64 (RFC 4648 §4) as :class:`semafore.server.models.SendRequest`.
Anything the fast path does not accept as-is (a malformed value, or a lax form pydantic would
coerce such as ``"7"`` for an int) is handed to the pydantic model, so the error, its field
name and every accepted coercion are exactly the HTTP surface's. The fast path may only
*accept* inputs pydantic also accepts, with equal values; ``tests/server/test_frames.py``
checks that property with hypothesis.
"""

from __future__ import annotations

import binascii
import re
from typing import Any, NamedTuple

from pydantic import TypeAdapter, ValidationError

from semafore.server import models as m

_ID = re.compile(m.ID_PATTERN)
_MESSAGE_ID = re.compile(m.MESSAGE_ID_PATTERN)
_ENVELOPE_KEYS = frozenset({"device_id", "registration_id", "body"})
_MESSAGE_KEYS = frozenset({"message_id", "envelopes"})
_MAX_REGISTRATION_ID = 2**31 - 1
_MAX_ENVELOPES = 64
_send_adapter = TypeAdapter(m.SendRequest)
_ack_adapter = TypeAdapter(m.AckRequest)


class SendEnvelope(NamedTuple):
    """One validated per-device envelope (same fields as ``models.EnvelopeIn``)."""

    device_id: str
    registration_id: int
    body: bytes


class SendMessage(NamedTuple):
    message_id: str
    envelopes: tuple[SendEnvelope, ...]


class FrameError(ValueError):
    """A frame field failed validation; ``field`` is the dotted path pydantic would name."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field
        self.detail = detail


def _field(exc: ValidationError, prefix: str) -> str:
    first = exc.errors()[0]
    return ".".join([prefix, *(str(p) for p in first["loc"])])


def _fast_envelope(value: Any) -> SendEnvelope | None:
    if type(value) is not dict or value.keys() != _ENVELOPE_KEYS:
        return None
    device_id = value["device_id"]
    registration_id = value["registration_id"]
    body = value["body"]
    if (
        type(device_id) is not str
        or _ID.fullmatch(device_id) is None
        or type(registration_id) is not int
        or not 1 <= registration_id <= _MAX_REGISTRATION_ID
        or type(body) is not str
        or not body
        or not body.isascii()
    ):
        return None
    try:  # base64.b64decode(body, validate=True) without its wrapper (an ASCII str is fine)
        raw = binascii.a2b_base64(body, strict_mode=True)
    except (binascii.Error, ValueError):
        return None
    if not raw or len(raw) > m.MAX_ENVELOPE:
        return None
    return SendEnvelope(device_id, registration_id, raw)


def _fast_message(value: Any) -> SendMessage | None:
    if type(value) is not dict or value.keys() != _MESSAGE_KEYS:
        return None
    message_id = value["message_id"]
    envelopes = value["envelopes"]
    if (
        type(message_id) is not str
        or _MESSAGE_ID.fullmatch(message_id) is None
        or type(envelopes) is not list
        or not 1 <= len(envelopes) <= _MAX_ENVELOPES
    ):
        return None
    parsed = []
    for item in envelopes:
        env = _fast_envelope(item)
        if env is None:
            return None
        parsed.append(env)
    return SendMessage(message_id, tuple(parsed))


def parse_send_message(value: Any, prefix: str = "frame.message") -> SendMessage:
    """Validate the ``message`` of a ``send`` frame exactly as ``models.SendRequest`` would.

    Raises :class:`FrameError` naming the first offending field under ``prefix``."""
    fast = _fast_message(value)
    if fast is not None:
        return fast
    try:
        req = _send_adapter.validate_python(value)
    except ValidationError as exc:
        raise FrameError(_field(exc, prefix), "message malformed") from exc
    return SendMessage(
        req.message_id,
        tuple(SendEnvelope(e.device_id, e.registration_id, e.body) for e in req.envelopes),
    )


def parse_ack(value: Any, prefix: str = "frame") -> list[str]:
    """The ``delivery_ids`` of an ``ack`` frame, validated like ``models.AckRequest``."""
    if type(value) is list and 1 <= len(value) <= 500:
        for item in value:
            if type(item) is not str or not 1 <= len(item) <= 64:
                break
        else:
            return value
    try:
        return _ack_adapter.validate_python({"delivery_ids": value}).delivery_ids
    except ValidationError as exc:
        raise FrameError(_field(exc, prefix), "bad ack") from exc
