"""One device's whole cryptographic life, without I/O (SPEC §1–§4).

A :class:`Device` owns its :class:`DeviceKeys`, a TOFU identity store and one
:class:`SessionRecord` per remote device address. It decides *what* to send (SMX1 until the
first reply, DR_V1 after, ``reset`` notices when a frame cannot be decrypted) and keeps its
prekeys healthy; the transport (:mod:`semafore.client.account`) decides *when*. Every
operation is transactional because :mod:`semafore.protocol.session_cipher` is. The versioned
persisted form of a device is at the end of this module (one module: a device and its bytes
change together, and the codec builds a :class:`Device`).
"""

from __future__ import annotations

import logging
import struct
from collections import OrderedDict
from dataclasses import dataclass, field
from enum import Enum

from semafore.client.errors import MalformedClientState
from semafore.protocol import session_cipher
from semafore.protocol.entropy import Entropy
from semafore.protocol.errors import NoSession, ProtocolError, UntrustedIdentity
from semafore.protocol.frame import is_smx1
from semafore.protocol.identity import IdentityStore, RemoteIdentity
from semafore.protocol.keys import (
    DeviceKeys,
    OneTimePrekey,
    PreKeyBundle,
    device_address,
    parse_device_keys,
    serialize_device_keys,
)
from semafore.protocol.reader import StateReader
from semafore.protocol.session import SessionRecord

log = logging.getLogger(__name__)

SEEN_MESSAGE_IDS = 20_000
"""How many received message ids a device remembers to drop duplicates (redelivery, replay)."""


class IdentityPolicy(Enum):
    """What to do when a remote device's identity keys change (SPEC §2, TOFU)."""

    STRICT = "strict"  # raise UntrustedIdentity: the user must verify first
    ACCEPT_AND_NOTIFY = "accept"  # Signal's default: accept, record a "safety number changed"


@dataclass(frozen=True)
class IdentityChange:
    address: str
    at: float


@dataclass(frozen=True)
class PrekeyPolicy:
    """When to top up one-time prekeys and rotate the signed prekey (Signal's defaults)."""

    opk_batch: int = 100
    opk_low_water: int = 10
    spk_rotation_interval: float = 7 * 86400.0


@dataclass
class Device:
    user_id: str
    device_id: str
    registration_id: int
    keys: DeviceKeys
    identities: IdentityStore = field(default_factory=IdentityStore)
    sessions: dict[str, SessionRecord] = field(default_factory=dict)
    seen: OrderedDict[str, None] = field(default_factory=OrderedDict)
    spk_created_at: float = 0.0
    policy: IdentityPolicy = IdentityPolicy.ACCEPT_AND_NOTIFY
    identity_changes: list[IdentityChange] = field(default_factory=list)
    skipped_keys_used: int = field(default=0, compare=False)
    """Frames opened with a stored skipped message key (SPEC §3), counted by :meth:`decrypt`;
    not persisted. The simulator's ``mechanism`` assertions read it (issue #11: a reorder
    scenario must show frames really arrived out of order)."""

    @classmethod
    def create(
        cls,
        user_id: str,
        device_id: str,
        entropy: Entropy,
        now: float,
        *,
        opk_count: int = 100,
        policy: IdentityPolicy = IdentityPolicy.ACCEPT_AND_NOTIFY,
    ) -> Device:
        """A fresh install: new identity, SPK and ``opk_count`` OPKs. The registration id is 0
        until the relay assigns one at login (it changes on re-registration, which is how
        senders learn a device is stale: HTTP 410)."""
        keys = DeviceKeys.generate(entropy, opk_count)
        return cls(user_id, device_id, 0, keys, spk_created_at=now, policy=policy)

    @property
    def address(self) -> str:
        return device_address(self.user_id, self.device_id)

    # -- identities ------------------------------------------------------------------------

    def trust(self, address: str, ik: bytes, sik: bytes, now: float) -> bool:
        """Pin or check a remote identity; True if it changed and the policy accepted it."""
        changed = self.identities.check(
            address,
            RemoteIdentity(ik, sik),
            accept_change=self.policy is IdentityPolicy.ACCEPT_AND_NOTIFY,
        )
        if changed:
            self.identity_changes.append(IdentityChange(address, now))
            log.info("identity changed", extra={"event": "identity_changed"})
        return changed

    def known_identity(self, address: str) -> RemoteIdentity | None:
        return self.identities.trusted.get(address)

    # -- sessions --------------------------------------------------------------------------

    def record(self, address: str) -> SessionRecord:
        record = self.sessions.get(address)
        if record is None:
            record = self.sessions[address] = SessionRecord()
        return record

    def has_session(self, address: str) -> bool:
        record = self.sessions.get(address)
        return record is not None and record.current is not None

    def start_session(self, bundle: PreKeyBundle, entropy: Entropy, now: float) -> None:
        """X3DH with ``bundle`` (SPK signature verified first); the new session is current."""
        bundle.verify()
        self.trust(bundle.address, bundle.ik, bundle.sik, now)
        session = session_cipher.initiate_session(
            self.keys.identity, self.address, bundle, entropy
        )
        self.record(bundle.address).install(session)

    def encrypt(self, address: str, plaintext: bytes, entropy: Entropy) -> bytes:
        record = self.sessions.get(address)
        if record is None or record.current is None:
            raise NoSession(f"no session with {address}")
        return session_cipher.encrypt(record, plaintext, entropy)

    def needs_identity(self, sender: str, envelope: bytes) -> bool:
        """True when ``envelope`` is an SMX1 from a device whose identity we never pinned."""
        return is_smx1(envelope) and sender not in self.identities.trusted

    def decrypt(self, sender: str, envelope: bytes) -> bytes:
        """Decrypt an SMX1/DR_V1 envelope from ``sender`` (its identity must be pinned for SMX1)."""
        known = self.identities.trusted.get(sender)
        if known is None and is_smx1(envelope):
            raise UntrustedIdentity(f"no identity pinned for {sender}", field="identity")
        ik, sik = (known.ik, known.sik) if known else (bytes(32), bytes(32))
        record = self.record(sender)
        before = _skipped_count(record)
        plaintext = session_cipher.decrypt(
            record, self.keys, self.address, ik, sik, sender, envelope
        )
        # Opening a frame from a stored key deletes exactly that key and stores none; any
        # other successful decrypt keeps or grows the count (eviction never outnumbers the
        # keys it makes room for), so a smaller count means a skipped key was used.
        if _skipped_count(record) < before:
            self.skipped_keys_used += 1
        return plaintext

    def reset_for(self, envelope: bytes) -> bytes | None:
        """The ``reset`` notice to send back for an envelope we cannot decrypt (SPEC §4)."""
        return session_cipher.reset_for_undecryptable(envelope)

    def handle_reset(self, sender: str, reset: bytes) -> bool:
        record = self.sessions.get(sender)
        if record is None:
            return False
        try:
            return session_cipher.handle_reset(record, reset)
        except ProtocolError:
            return False

    def forget_device(self, address: str) -> None:
        """The remote device was removed or reinstalled: archive what we had with it."""
        record = self.sessions.get(address)
        if record is not None:
            record.archive_current()

    # -- duplicates ------------------------------------------------------------------------

    def first_time_seen(self, message_key: str) -> bool:
        """Remember ``message_key``; False if it was already seen (drop the duplicate)."""
        if message_key in self.seen:
            return False
        self.seen[message_key] = None
        while len(self.seen) > SEEN_MESSAGE_IDS:
            self.seen.popitem(last=False)
        return True

    # -- prekey maintenance ----------------------------------------------------------------

    def opks_to_upload(
        self, server_count: int, entropy: Entropy, policy: PrekeyPolicy
    ) -> list[OneTimePrekey]:
        """New OPKs to publish when the relay holds fewer than the low-water mark."""
        if server_count >= policy.opk_low_water:
            return []
        return self.keys.generate_opks(entropy, policy.opk_batch - server_count)

    def spk_due(self, now: float, policy: PrekeyPolicy) -> bool:
        return now - self.spk_created_at >= policy.spk_rotation_interval

    def rotate_spk(self, entropy: Entropy, now: float) -> None:
        """New SPK; previous ones stay (bounded) so SMX1s in flight still bootstrap (SPEC §2)."""
        self.keys.rotate_spk(entropy)
        self.spk_created_at = now

    # -- persistence -----------------------------------------------------------------------

    def serialize(self) -> bytes:
        """The versioned persisted form (``"SFD"`` v1, below)."""
        return serialize_device(self)

    @classmethod
    def parse(cls, data: bytes) -> Device:
        """Load :meth:`serialize`'s output exactly; :class:`MalformedClientState` otherwise."""
        return parse_device(data)


def _skipped_count(record: SessionRecord) -> int:
    return sum(len(session.ratchet.skipped) for session in record.sessions())


# -- persisted form ---------------------------------------------------------------------
# The versioned persisted form of a Device (SPEC §6):
# ``"SFD" 0x01`` then: user id, device id (u8 length + UTF-8), registration id u32, SPK
# creation time f64, identity policy u8, the device keys (u32 length +
# :func:`serialize_device_keys`), pinned identities (u32 count × address, IK, SIK), session
# records (u32 count × address, u32 length, :meth:`SessionRecord.serialize`), seen message
# ids (u32 count × u8-length id) and identity changes (u32 count × address, f64 time). Loading
# is exact: ``parse(serialize(d)).serialize() == serialize(d)``; a bad byte is a
# :class:`MalformedClientState` naming the part, and never yields a half-loaded device.

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
