"""One device's whole cryptographic life, without I/O (SPEC §1–§4).

A :class:`Device` owns its :class:`DeviceKeys`, a TOFU identity store and one
:class:`SessionRecord` per remote device address. It decides *what* to send (SMX1 until the
first reply, DR_V1 after, ``reset`` notices when a frame cannot be decrypted) and keeps its
prekeys healthy; the transport (:mod:`semafore.client.account`) decides *when*. Every
operation is transactional because :mod:`semafore.protocol.session_cipher` is.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from enum import Enum

from semafore.protocol import session_cipher
from semafore.protocol.entropy import Entropy
from semafore.protocol.errors import NoSession, ProtocolError, UntrustedIdentity
from semafore.protocol.frame import is_smx1
from semafore.protocol.identity import IdentityStore, RemoteIdentity
from semafore.protocol.keys import DeviceKeys, OneTimePrekey, PreKeyBundle, device_address
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
        from semafore.client.state import serialize_device

        return serialize_device(self)

    @classmethod
    def parse(cls, data: bytes) -> Device:
        from semafore.client.state import parse_device

        return parse_device(data)


def _skipped_count(record: SessionRecord) -> int:
    return sum(len(session.ratchet.skipped) for session in record.sessions())
