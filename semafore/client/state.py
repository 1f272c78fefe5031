"""Versioned persisted form of a :class:`~semafore.client.device.Device` (SPEC §6).

``"SFD" 0x01`` then: user id, device id (u8 length + UTF-8), registration id u32, SPK
creation time f64, identity policy u8, the device keys (u32 length +
:func:`serialize_device_keys`), pinned identities (u32 count × address, IK, SIK), session
records (u32 count × address, u32 length, :meth:`SessionRecord.serialize`), seen message
ids (u32 count × u8-length id) and identity changes (u32 count × address, f64 time). Loading
is exact: ``parse(serialize(d)).serialize() == serialize(d)``; a bad byte is a
:class:`MalformedClientState` naming the part, and never yields a half-loaded device.
"""

from __future__ import annotations

import struct
from collections import OrderedDict

from semafore.client.device import Device, IdentityChange, IdentityPolicy
from semafore.client.errors import MalformedClientState
from semafore.protocol.errors import ProtocolError
from semafore.protocol.identity import IdentityStore, RemoteIdentity
from semafore.protocol.keys import parse_device_keys, serialize_device_keys
from semafore.protocol.reader import StateReader
from semafore.protocol.session import SessionRecord

MAGIC = b"SFD"
VERSION = 1
_F64 = struct.Struct(">d")
_U32 = struct.Struct(">I")
_POLICIES = {IdentityPolicy.STRICT: 0, IdentityPolicy.ACCEPT_AND_NOTIFY: 1}


def _text(value: str, width: int = 1) -> bytes:
    raw = value.encode("utf-8")
    limit = 255 if width == 1 else 65535
    if len(raw) > limit:
        raise MalformedClientState(f"{value[:20]!r}… too long to persist", field="text")
    return (bytes((len(raw),)) if width == 1 else struct.pack(">H", len(raw))) + raw


def serialize_device(device: Device) -> bytes:
    keys = serialize_device_keys(device.keys)
    parts = [
        MAGIC,
        bytes((VERSION,)),
        _text(device.user_id),
        _text(device.device_id),
        _U32.pack(device.registration_id),
        _F64.pack(device.spk_created_at),
        bytes((_POLICIES[device.policy],)),
        _U32.pack(len(keys)),
        keys,
        _U32.pack(len(device.identities.trusted)),
    ]
    for address, identity in device.identities.trusted.items():
        parts += [_text(address, 2), identity.ik, identity.sik]
    parts.append(_U32.pack(len(device.sessions)))
    for address, record in device.sessions.items():
        blob = record.serialize()
        parts += [_text(address, 2), _U32.pack(len(blob)), blob]
    parts.append(_U32.pack(len(device.seen)))
    parts += [_text(message_key) for message_key in device.seen]
    parts.append(_U32.pack(len(device.identity_changes)))
    for change in device.identity_changes:
        parts += [_text(change.address, 2), _F64.pack(change.at)]
    return b"".join(parts)


def parse_device(data: bytes) -> Device:
    try:
        return _parse(bytes(data))
    except MalformedClientState:
        raise
    except ProtocolError as exc:  # MalformedState from the protocol readers
        raise MalformedClientState(exc.detail, field=exc.field) from exc
    except UnicodeDecodeError as exc:
        raise MalformedClientState("text is not UTF-8", field="text") from exc


def _parse(data: bytes) -> Device:
    r = StateReader(data)
    if r.take(3, "magic") != MAGIC:
        raise MalformedClientState("not a device state", field="magic")
    version = r.u8("version")
    if version != VERSION:
        raise MalformedClientState(f"unknown device state version {version}", field="version")

    def text(name: str, width: int = 1) -> str:
        n = r.u8(name) if width == 1 else r.u16(name)
        return r.take(n, name).decode("utf-8")

    user_id, device_id = text("user_id"), text("device_id")
    registration_id = r.u32("registration_id")
    spk_created_at = _F64.unpack(r.take(8, "spk_created_at"))[0]
    policy_byte = r.u8("policy")
    policies = {v: k for k, v in _POLICIES.items()}
    if policy_byte not in policies:
        raise MalformedClientState(f"unknown identity policy {policy_byte}", field="policy")
    keys = parse_device_keys(r.take(r.u32("keys.length"), "keys"))
    identities = IdentityStore()
    for _ in range(r.u32("identities.count")):
        address = text("identity.address", 2)
        identities.trusted[address] = RemoteIdentity(
            r.take(32, "identity.ik"), r.take(32, "identity.sik")
        )
    sessions: dict[str, SessionRecord] = {}
    for _ in range(r.u32("sessions.count")):
        address = text("session.address", 2)
        sessions[address] = SessionRecord.parse(r.take(r.u32("session.length"), "session"))
    seen: OrderedDict[str, None] = OrderedDict()
    for _ in range(r.u32("seen.count")):
        seen[text("seen.id")] = None
    changes = []
    for _ in range(r.u32("identity_changes.count")):
        address = text("identity_change.address", 2)
        changes.append(IdentityChange(address, _F64.unpack(r.take(8, "identity_change.at"))[0]))
    r.finish("device")
    return Device(
        user_id,
        device_id,
        registration_id,
        keys,
        identities,
        sessions,
        seen,
        spk_created_at,
        policies[policy_byte],
        changes,
    )
