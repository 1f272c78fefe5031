"""What travels *inside* the E2E envelope: the content message (never seen by the relay).

``"SFC1" || canonical JSON`` (sorted keys, no spaces; bytes as standard base64). Versioned by
the magic so a later format can coexist. The attachment key and the ciphertext's SHA-256
travel here and only here (ADR-0157: the relay stores ciphertext and learns neither), and a
copy sent to the sender's own other devices names the conversation in ``sync_to``.

``sync_to`` is one string on the wire (``"sync"``): the peer user id of a one-to-one
conversation, or the peers of a message to several users joined by ``,`` (issue #11). User
ids are ``[A-Za-z0-9._-]`` (``semafore.server.models.ID_PATTERN``), so the separator never
occurs inside one, the single-user form stays byte-identical to what every implementation
and the pinned vectors already carry, and a decoder that treats ``sync`` as an opaque string
(the Go adapter) still accepts the several-user form.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from semafore.client.errors import MalformedContent

MAGIC = b"SFC1"
Kind = Literal["text", "attachment", "receipt", "broadcast", "reset"]
KINDS: tuple[str, ...] = ("text", "attachment", "receipt", "broadcast", "reset")
SYNC_SEPARATOR = ","


def sync_field(peers: Iterable[str]) -> str:
    """The ``sync_to`` value naming ``peers`` (the other users of the conversation): sorted,
    so one conversation has one encoding whatever order the sender listed its users in."""
    names = sorted(set(peers))
    if not names:
        raise MalformedContent("a sync copy names at least one peer", field="sync")
    for name in names:
        if not name or SYNC_SEPARATOR in name:
            raise MalformedContent(f"{name!r} is not a user id", field="sync")
    return SYNC_SEPARATOR.join(names)


@dataclass(frozen=True)
class AttachmentPointer:
    """Everything a recipient needs to fetch and open an attachment (ADR-0157)."""

    file_id: str
    key: bytes
    sha256: bytes
    size: int


@dataclass(frozen=True)
class Content:
    message_id: str
    kind: Kind
    sent_at: float
    body: bytes = b""
    attachment: AttachmentPointer | None = None
    receipt_for: tuple[str, ...] = ()
    sync_to: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def sync_peers(self) -> tuple[str, ...]:
        """The users ``sync_to`` names (empty when this is no sync copy)."""
        return () if self.sync_to is None else tuple(self.sync_to.split(SYNC_SEPARATOR))

    def encode(self) -> bytes:
        doc: dict[str, Any] = {
            "id": self.message_id,
            "kind": self.kind,
            "at": self.sent_at,
            "body": _b64(self.body),
        }
        if self.attachment is not None:
            a = self.attachment
            doc["att"] = {
                "id": a.file_id,
                "key": _b64(a.key),
                "sha": _b64(a.sha256),
                "size": a.size,
            }
        if self.receipt_for:
            doc["rcpt"] = list(self.receipt_for)
        if self.sync_to is not None:
            doc["sync"] = self.sync_to
        if self.extra:
            doc["x"] = dict(self.extra)
        return MAGIC + json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(value: Any, name: str, size: int | None = None) -> bytes:
    if not isinstance(value, str):
        raise MalformedContent(f"{name} must be a base64 string", field=name)
    try:
        raw = base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise MalformedContent(f"{name} is not base64", field=name) from exc
    if size is not None and len(raw) != size:
        raise MalformedContent(f"{name} must be {size} bytes", field=name)
    return raw


def _text(doc: dict[str, Any], key: str, name: str) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or not value:
        raise MalformedContent(f"{name} must be a non-empty string", field=name)
    return value


def decode(data: bytes) -> Content:
    """Parse :meth:`Content.encode` output; :class:`MalformedContent` names the bad field."""
    if data[:4] != MAGIC:
        raise MalformedContent("magic is not 'SFC1'", field="magic")
    try:
        doc = json.loads(data[4:].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedContent("body is not UTF-8 JSON", field="json") from exc
    if not isinstance(doc, dict):
        raise MalformedContent("content must be a JSON object", field="json")
    kind = doc.get("kind")
    if kind not in KINDS:
        raise MalformedContent(f"unknown kind {kind!r}", field="kind")
    at = doc.get("at")
    if not isinstance(at, int | float) or isinstance(at, bool):
        raise MalformedContent("at must be a number", field="at")
    attachment = None
    if "att" in doc:
        att = doc["att"]
        if not isinstance(att, dict):
            raise MalformedContent("att must be an object", field="att")
        size = att.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise MalformedContent("att.size must be a non-negative integer", field="att.size")
        attachment = AttachmentPointer(
            _text(att, "id", "att.id"),
            _unb64(att.get("key"), "att.key", 32),
            _unb64(att.get("sha"), "att.sha", 32),
            size,
        )
    receipts = doc.get("rcpt", [])
    if not isinstance(receipts, list) or not all(isinstance(r, str) for r in receipts):
        raise MalformedContent("rcpt must be a list of message ids", field="rcpt")
    sync = doc.get("sync")
    if sync is not None and (
        not isinstance(sync, str) or not all(sync.split(SYNC_SEPARATOR))
    ):
        raise MalformedContent("sync must be user ids separated by ','", field="sync")
    extra = doc.get("x", {})
    if not isinstance(extra, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in extra.items()
    ):
        raise MalformedContent("x must map strings to strings", field="x")
    return Content(
        message_id=_text(doc, "id", "id"),
        kind=cast(Kind, kind),
        sent_at=float(at),
        body=_unb64(doc.get("body"), "body"),
        attachment=attachment,
        receipt_for=tuple(receipts),
        sync_to=sync,
        extra=extra,
    )
