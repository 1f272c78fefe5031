"""Sessions per remote device (SPEC §4): one current, up to 40 archived (libsignal's bound).

A :class:`Session` is a ratchet plus what the bootstrap left behind: the base key ``EK_A``
(so a resent SMX1 finds its session again) and, while it matters, the SMX1 parameters.
An initiator keeps wrapping every frame in SMX1 until it decrypted a frame from the peer; a
responder keeps ``SK`` so a delayed or resent SMX1 of the same ``EK_A`` still opens (the inner
frame is protected by the ratchet either way; see docs/protocol.md).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum

from semafore.protocol.errors import MalformedState, ProtocolError
from semafore.protocol.keys import decode_key_id, encode_key_id
from semafore.protocol.ratchet import RatchetState
from semafore.protocol.reader import StateReader

MAX_ARCHIVED_SESSIONS = 40
RECORD_MAGIC = b"SFS"
RECORD_VERSION = 1


class Role(IntEnum):
    INITIATOR = 1
    RESPONDER = 2


@dataclass
class Bootstrap:
    """The SMX1 parameters of a session's X3DH: ``sk`` keys the SMX1 AEAD."""

    sk: bytes
    spk_key_id: str
    opk_key_id: str | None


@dataclass
class Session:
    ratchet: RatchetState
    role: Role
    base_key: bytes
    bootstrap: Bootstrap | None

    @property
    def wraps_in_smx1(self) -> bool:
        """True while the initiator has not yet heard from the peer (SPEC §2)."""
        return self.role is Role.INITIATOR and self.bootstrap is not None

    def serialize(self) -> bytes:
        parts = [bytes((self.role,)), self.base_key]
        if self.bootstrap is None:
            parts.append(b"\x00")
        else:
            spk = encode_key_id(self.bootstrap.spk_key_id, "spk_key_id")
            opk = (
                b""
                if self.bootstrap.opk_key_id is None
                else encode_key_id(self.bootstrap.opk_key_id, "opk_key_id")
            )
            parts += [b"\x01", self.bootstrap.sk, bytes((len(spk),)), spk, bytes((len(opk),)), opk]
        ratchet = self.ratchet.serialize()
        parts += [struct.pack(">I", len(ratchet)), ratchet]
        return b"".join(parts)

    @classmethod
    def parse_from(cls, reader: StateReader) -> Session:
        role_byte = reader.u8("session.role")
        try:
            role = Role(role_byte)
        except ValueError:
            raise MalformedState(f"unknown role {role_byte}", field="session.role") from None
        base_key = reader.take(32, "session.base_key")
        has_bootstrap = reader.u8("session.bootstrap")
        bootstrap = None
        if has_bootstrap == 1:
            sk = reader.take(32, "bootstrap.sk")
            spk = _key_id(reader, "bootstrap.spk_key_id")
            opk_len = reader.u8("bootstrap.opk_key_id")
            opk = _key_id_bytes(reader.take(opk_len, "bootstrap.opk_key_id")) if opk_len else None
            if spk is None:
                raise MalformedState("empty SPK key id", field="bootstrap.spk_key_id")
            bootstrap = Bootstrap(sk, spk, opk)
        elif has_bootstrap != 0:
            raise MalformedState("bootstrap flag must be 0 or 1", field="session.bootstrap")
        length = reader.u32("session.ratchet.length")
        end = reader.offset + length
        if end > len(reader.data):
            raise MalformedState("truncated ratchet state", field="session.ratchet")
        ratchet, stop = RatchetState.parse_from(reader.data[:end], reader.offset)
        if stop != end:
            raise MalformedState("ratchet length mismatch", field="session.ratchet")
        reader.offset = end
        return cls(ratchet, role, base_key, bootstrap)


def _key_id(reader: StateReader, field: str) -> str | None:
    length = reader.u8(field)
    return _key_id_bytes(reader.take(length, field)) if length else None


def _key_id_bytes(raw: bytes) -> str:
    try:
        return decode_key_id(raw)
    except ProtocolError as exc:
        raise MalformedState("invalid key id", field="bootstrap.key_id") from exc


@dataclass
class SessionRecord:
    """All sessions with one remote device: ``current`` first, then ``archived`` newest first."""

    current: Session | None = None
    archived: list[Session] = field(default_factory=list)

    def sessions(self) -> list[Session]:
        return ([self.current] if self.current else []) + self.archived

    def install(self, session: Session) -> None:
        """Make ``session`` current; the previous current is archived (SPEC §4)."""
        if self.current is not None and self.current is not session:
            self.archived.insert(0, self.current)
        if session in self.archived:
            self.archived.remove(session)
        self.current = session
        del self.archived[MAX_ARCHIVED_SESSIONS:]

    promote = install

    def archive_current(self) -> None:
        if self.current is not None:
            self.archived.insert(0, self.current)
            del self.archived[MAX_ARCHIVED_SESSIONS:]
            self.current = None

    def find_by_base_key(self, base_key: bytes) -> Session | None:
        for session in self.sessions():
            if session.base_key == base_key:
                return session
        return None

    def serialize(self) -> bytes:
        """``"SFS" 0x01 | has_current u8 | u8 count | (u32 len, session)*``."""
        sessions = self.sessions()
        parts = [RECORD_MAGIC, bytes((RECORD_VERSION, 1 if self.current else 0, len(sessions)))]
        for session in sessions:
            parts.append(session.serialize())
        return b"".join(parts)

    @classmethod
    def parse(cls, data: bytes) -> SessionRecord:
        reader = StateReader(bytes(data))
        if reader.take(3, "record.magic") != RECORD_MAGIC:
            raise MalformedState("not a session record", field="record.magic")
        version = reader.u8("record.version")
        if version != RECORD_VERSION:
            raise MalformedState(f"unknown record version {version}", field="record.version")
        has_current = reader.u8("record.has_current")
        count = reader.u8("record.count")
        if has_current not in (0, 1) or count > MAX_ARCHIVED_SESSIONS + 1 or count < has_current:
            raise MalformedState("inconsistent session counts", field="record.count")
        sessions = [Session.parse_from(reader) for _ in range(count)]
        reader.finish("record")
        if has_current:
            return cls(sessions[0], sessions[1:])
        return cls(None, sessions)
