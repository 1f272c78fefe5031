"""Storage ports: every piece of relay state goes through one of these protocols.

The relay (``semafore.server``) depends only on these ``typing.Protocol``s, never on an
adapter, so the embedded adapters here (memory, SQLite) and the later MongoDB / Redis /
SeaweedFS ones are interchangeable and are held to the same behaviour by
``tests/storage/test_conformance.py``.

Rules every adapter follows (the conformance suite checks each):

- Methods are ``async`` so network adapters fit; each method is atomic (all or nothing).
- Records are frozen dataclasses; adapters store and return them field for field.
- "Not found" is ``None`` (or an empty result); a uniqueness violation is
  :class:`AlreadyExists`; nothing else is raised for well-formed calls.
- Time is passed in (``now``, unix seconds as float) so retention and expiry are testable.
- Nothing here ever receives plaintext: envelope bodies and blobs are ciphertext the relay
  cannot read (seed §2.2).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable

Role = Literal["member", "admin"]
EnvelopeKind = Literal["message", "broadcast", "reset"]


class StorageError(Exception):
    """Base of adapter errors the relay knows how to answer."""


class AlreadyExists(StorageError):
    """A record with the same unique key is already stored; nothing was written."""


class NotFound(StorageError):
    """An update named a record that does not exist; nothing was written."""


class NotDurable(StorageError):
    """A write reached the store but could not be confirmed durable in time (for example
    fewer replicas than the deployment requires acknowledged it, Redis ``WAIT``): it must not
    be acknowledged. The relay answers 503 with ``Retry-After`` and the client retries under
    the same send key, which the send ledger replays once (docs/backends.md "`WAIT N` on the
    send")."""

    retry_after: int = 1


class StorageUnavailable(StorageError):
    """The backend could not serve the call now: unreachable, timed out, or it answered an
    error of its own (for example no live SeaweedFS volume server holds a blob's copy, seed
    §3.5). Nothing the call meant to change was acknowledged, and the same call may succeed
    later (a failover, a restarted server, another copy), so the relay answers 503
    ``storage_unavailable`` with ``Retry-After``, never a bare 500, and the client's retry
    policy honours it (docs/server.md "Errors")."""

    retry_after: int = 1


# --- accounts -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Org:
    org_id: str
    name: str
    created_at: float
    plan: str = "standard"
    seats: int = 25


@dataclass(frozen=True)
class User:
    user_id: str
    created_at: float


@dataclass(frozen=True)
class Membership:
    org_id: str
    user_id: str
    role: Role
    joined_at: float


@dataclass(frozen=True)
class Device:
    """A registered device; ``registration_id`` changes when a device id is re-registered.

    Senders quote it per envelope so the relay can answer 410 ``stale`` (Signal's
    ``StaleDevices``) instead of queueing for a device the sender no longer knows.
    """

    user_id: str
    device_id: str
    registration_id: int
    created_at: float


@dataclass(frozen=True)
class TotpEnrolment:
    """RFC 6238 secret of a user and the last accepted time step (replay guard, ADR-0161)."""

    user_id: str
    secret: bytes
    last_step: int = -1


@dataclass(frozen=True)
class Invitation:
    """An organisation's offer of membership to a user id that already exists.

    A user who belongs to an organisation joins another only by accepting from their own
    authenticated session (docs/server.md "Organisation isolation"): until then the inviting
    organisation cannot list, message or drain the user, nor log them in."""

    org_id: str
    user_id: str
    role: Role
    invited_by: str
    invited_at: float
    expires_at: float


@dataclass(frozen=True)
class RetentionPolicy:
    """Per-organisation maximum ages in seconds; ``None`` keeps forever (ADRs 0093–0097)."""

    org_id: str
    envelope_max_age: int | None = None
    attachment_max_age: int | None = None
    audit_max_age: int | None = None


def check_signup(org: Org, admin: User, totp: TotpEnrolment) -> None:
    """The arguments of :meth:`AccountStore.create_org_with_admin` belong together."""
    if totp.user_id != admin.user_id:
        raise ValueError(f"totp enrolment is for {totp.user_id!r}, not the admin")


class AccountStore(Protocol):
    async def create_org(self, org: Org) -> None: ...
    async def create_org_with_admin(self, org: Org, admin: User, totp: TotpEnrolment) -> None:
        """Signup, all or nothing: the org, its admin user (both new, else
        :class:`AlreadyExists` and nothing written), the admin membership (joined at
        ``org.created_at``) and the admin's TOTP enrolment. ``ValueError`` if ``totp`` is
        not the admin's. SQLite: one transaction; memory: one synchronous step; MongoDB
        (FerretDB v1 has no multi-document transactions): the membership is written last
        and any failure deletes what this call wrote (compensation)."""
        ...

    async def get_org(self, org_id: str) -> Org | None: ...
    async def update_org(self, org: Org) -> None: ...  # NotFound
    async def list_orgs(self) -> list[Org]: ...
    async def create_user(self, user: User) -> None: ...
    async def get_user(self, user_id: str) -> User | None: ...
    async def put_membership(self, membership: Membership) -> None: ...  # upsert
    async def get_membership(self, org_id: str, user_id: str) -> Membership | None: ...
    async def list_memberships(self, user_id: str) -> list[Membership]: ...
    async def list_members(self, org_id: str) -> list[Membership]: ...
    async def delete_membership(self, org_id: str, user_id: str) -> bool: ...
    async def add_device(self, device: Device) -> None: ...
    async def get_device(self, user_id: str, device_id: str) -> Device | None: ...
    async def list_devices(self, user_id: str) -> list[Device]: ...
    async def delete_device(self, user_id: str, device_id: str) -> bool: ...
    async def put_totp(self, enrolment: TotpEnrolment) -> None: ...
    async def get_totp(self, user_id: str) -> TotpEnrolment | None: ...
    async def delete_totp(self, user_id: str) -> bool:
        """Forget the user's enrolment (a released user id starts over); True if there was one."""
        ...

    async def advance_totp_step(self, user_id: str, step: int) -> bool:
        """Record ``step`` as used iff it is newer than the last one (atomic compare-and-set)."""
        ...

    async def put_retention(self, policy: RetentionPolicy) -> None: ...
    async def get_retention(self, org_id: str) -> RetentionPolicy | None: ...
    async def put_invitation(self, invitation: Invitation) -> None: ...  # upsert (org, user)
    async def get_invitation(self, org_id: str, user_id: str) -> Invitation | None: ...
    async def list_invitations(self, user_id: str) -> list[Invitation]:
        """The user's pending invitations, by org id."""
        ...

    async def delete_invitation(self, org_id: str, user_id: str) -> bool: ...


# --- tokens ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RefreshToken:
    """A refresh token, stored by SHA-256 of its value (the value itself is never stored).

    ``family_expires_at`` bounds the whole rotation chain (ADR-0163): rotating never extends
    the absolute lifetime.
    """

    token_hash: bytes
    family_id: str
    user_id: str
    org_id: str
    device_id: str
    issued_at: float
    family_expires_at: float


@dataclass(frozen=True)
class RefreshUse:
    """Outcome of :meth:`TokenStore.use_refresh`: the record, and whether it had been used."""

    token: RefreshToken
    reused: bool


@dataclass(frozen=True)
class OtpChallenge:
    """A pending login code, bound to the client address that asked for it (issue 13).

    One per (org, user, address): a stranger's request or guess touches only the stranger's
    own challenge, never the one a victim asked for. ``failures`` counts wrong guesses on this
    code (it dies at ``Settings.otp_max_failures``); ``strikes`` counts codes that died in a
    row at this address and ``locked_until`` is the backoff they earned (semafore.server.
    login_guard). An empty ``code_hash`` is a dead code kept only for its backoff."""

    org_id: str
    user_id: str
    code_hash: bytes
    expires_at: float
    address: str = ""
    failures: int = 0
    strikes: int = 0
    locked_until: float = 0.0


class TokenStore(Protocol):
    async def put_refresh(self, token: RefreshToken) -> None: ...
    async def use_refresh(self, token_hash: bytes) -> RefreshUse | None:
        """Atomically mark the token used; ``reused`` is True if it already was."""
        ...

    async def revoke_family(self, family_id: str) -> None: ...
    async def is_family_revoked(self, family_id: str) -> bool: ...
    async def revoke_device(self, user_id: str, device_id: str) -> None:
        """Revoke every family issued to this device (device removal)."""
        ...

    async def revoke_member(self, org_id: str, user_id: str) -> None:
        """Revoke every family issued to this user in this organisation only (removal from
        one org leaves the user's sessions in their other orgs alone)."""
        ...

    async def put_otp(self, challenge: OtpChallenge) -> None:
        """Store, replacing any challenge of the same (org, user, address)."""
        ...

    async def get_otp(self, org_id: str, user_id: str, address: str) -> OtpChallenge | None: ...
    async def take_otp(self, org_id: str, user_id: str, address: str) -> OtpChallenge | None:
        """Remove and return the challenge (a right code is used once)."""
        ...

    async def fail_otp(self, org_id: str, user_id: str, address: str) -> OtpChallenge | None:
        """Atomically count one wrong guess; the updated challenge, None if there is none."""
        ...


# --- key directory --------------------------------------------------------------------------


@dataclass(frozen=True)
class IdentityRecord:
    user_id: str
    device_id: str
    ik: bytes
    sik: bytes


@dataclass(frozen=True)
class SignedPrekeyRecord:
    key_id: str
    public: bytes
    signature: bytes


@dataclass(frozen=True)
class OneTimePrekeyRecord:
    key_id: str
    public: bytes


class KeyStore(Protocol):
    async def put_identity(self, identity: IdentityRecord) -> None: ...
    async def get_identity(self, user_id: str, device_id: str) -> IdentityRecord | None: ...
    async def set_spk(self, user_id: str, device_id: str, spk: SignedPrekeyRecord) -> None: ...
    async def get_spk(self, user_id: str, device_id: str) -> SignedPrekeyRecord | None: ...
    async def add_opks(
        self, user_id: str, device_id: str, opks: Sequence[OneTimePrekeyRecord]
    ) -> None:
        """Add a batch; AlreadyExists (and nothing added) if any key id is already stored."""
        ...

    async def claim_opk(self, user_id: str, device_id: str) -> OneTimePrekeyRecord | None:
        """Atomically remove and return one OPK: no two callers ever get the same one."""
        ...

    async def opk_count(self, user_id: str, device_id: str) -> int: ...
    async def published_devices(self, user_id: str) -> set[str]:
        """Ids of the user's devices that have published an identity **and** a signed
        prekey: the devices a peer can open a session with (a SPEC §1 bundle needs both;
        OPKs are optional). One read, so the relay's recipient device set
        (``semafore.server.device_set``) costs one key-store call per user, not two per
        device. A key record whose device is no longer registered may still be listed;
        the relay intersects with :meth:`AccountStore.list_devices`."""
        ...

    async def delete_device_keys(self, user_id: str, device_id: str) -> None: ...


# --- envelope queues ------------------------------------------------------------------------


@dataclass(frozen=True)
class QueuedEnvelope:
    """One per-device envelope waiting for its device's acknowledgement."""

    delivery_id: str
    org_id: str
    message_id: str
    kind: EnvelopeKind
    sender_user_id: str
    sender_device_id: str
    recipient_user_id: str
    recipient_device_id: str
    body: bytes
    envelope_hash: bytes
    received_at: float


@dataclass(frozen=True)
class DeliveryProof:
    """Content-existence proof (seed §2.2): the envelope's SHA-256 and when it moved."""

    delivery_id: str
    org_id: str
    message_id: str
    envelope_hash: bytes
    sender_user_id: str
    sender_device_id: str
    recipient_user_id: str
    recipient_device_id: str
    received_at: float
    delivered_at: float


_R = TypeVar("_R")
_new_object = object.__new__


def hot_record(cls: type[_R], **fields: Any) -> _R:
    """A frozen dataclass record built without its generated ``__init__``.

    A frozen dataclass assigns every field through ``object.__setattr__``: for the ten-odd
    fields of the records made once per envelope (:class:`QueuedEnvelope`,
    :class:`DeliveryProof`) that was ~5 µs each, a tenth of the relay's own per-envelope
    CPU. Only for plain frozen dataclasses (no ``__post_init__``, no slots), given every
    field by name; ``tests/server/test_hot_records.py`` checks the result equals the
    normally constructed record."""
    record = _new_object(cls)
    record.__dict__.update(fields)
    return record


def delivery_proof(envelope: QueuedEnvelope, delivered_at: float) -> DeliveryProof:
    """The proof that ``envelope`` was delivered at ``delivered_at`` (seed §2.2): its hash
    and ids, never its body."""
    return hot_record(
        DeliveryProof,
        delivery_id=envelope.delivery_id,
        org_id=envelope.org_id,
        message_id=envelope.message_id,
        envelope_hash=envelope.envelope_hash,
        sender_user_id=envelope.sender_user_id,
        sender_device_id=envelope.sender_device_id,
        recipient_user_id=envelope.recipient_user_id,
        recipient_device_id=envelope.recipient_device_id,
        received_at=envelope.received_at,
        delivered_at=delivered_at,
    )


SendKey = tuple[str, str, str, str, str]
"""(org, sender user, sender device, recipient, message id): one send ledger entry."""
BROADCAST = "*"
"""The ``recipient`` of a broadcast's ledger entry."""


@dataclass(frozen=True)
class SendRecord:
    """The send ledger's entry of one accepted send (issue #3: at-least-once, idempotent).

    Keyed by (org, sender user, sender device, recipient, message id); ``recipient`` is the
    recipient user of a send (a client's sync copy to its own other devices shares the
    message id of the message it copies) or :data:`BROADCAST` for a broadcast (no user id
    has a ``*``). ``digest`` is the SHA-256 of the canonical envelope set (recipients,
    registration ids, body hashes), ``deliveries`` the (recipient user, recipient device,
    delivery id) triples it was queued as: ids and digests only, never a body.
    ``expires_at`` bounds the entry's life where the backend has TTLs (Redis); everywhere the
    relay's retention job removes it (:meth:`QueueStore.expire_sends`).
    """

    org_id: str
    sender_user_id: str
    sender_device_id: str
    recipient: str
    message_id: str
    digest: bytes
    deliveries: tuple[tuple[str, str, str], ...]
    accepted_at: float
    expires_at: float

    @property
    def key(self) -> SendKey:
        return (
            self.org_id, self.sender_user_id, self.sender_device_id, self.recipient,
            self.message_id,
        )


class QueueStore(Protocol):
    @property
    def pipelines_sends(self) -> bool:
        """True when :meth:`enqueue_send_limited` calls started one after another on one
        event loop (each one's first step run before the next one's starts) take effect in
        that order, *and* each waits on a round trip worth overlapping. The relay then starts
        a socket's next send before the previous one answered, so one socket's sends share
        the store's pipelined trips (``semafore.server.send_order``, docs/backends.md
        "Overlapping a socket's sends"); otherwise it awaits them one at a time.

        False by default: an adapter that claims it must pass the conformance check that
        a burst of started calls queues in the order started
        (``tests/storage/test_conformance.py``). Redis on one server or behind Sentinel
        (auto-pipelined, one FIFO connection, no ``WAIT``) claims it; the in-memory store
        answers in its first step, so there is nothing to overlap."""
        return False

    async def enqueue(self, envelopes: Sequence[QueuedEnvelope]) -> None:
        """Store all envelopes or none (AlreadyExists on a duplicate delivery id)."""
        ...

    async def enqueue_send(
        self, record: SendRecord, envelopes: Sequence[QueuedEnvelope]
    ) -> SendRecord | None:
        """Record the send and queue its envelopes, all or nothing, iff no send with the
        record's key is recorded: then return None. Otherwise write nothing and return the
        recorded send (a retry, or a concurrent twin: exactly one of them queues).
        AlreadyExists (and nothing written) on a duplicate delivery id."""
        ...

    async def enqueue_send_limited(
        self,
        record: SendRecord,
        envelopes: Sequence[QueuedEnvelope],
        ratelimits: RateLimitStore,
        hits: Sequence[RateHit],
        now: float,
    ) -> SendRecord | None:
        """Count ``hits`` in ``ratelimits`` as :meth:`RateLimitStore.hit_each`, then, if
        none was refused, :meth:`enqueue_send`. A refused hit raises :class:`LimitRefused`
        (its index and decision) and writes no send: the hits before it stay counted, those
        after it are not, exactly as the two calls one after the other.

        Why one method: the relay counts a send's rate limits (the ``send`` limit when
        deferred, the two queue quotas) right before its enqueue, and on Redis two calls are
        two sequential round trips; an adapter whose rate limits live on the same server
        makes both one script (issue #16 item 4, docs/backends.md "one round trip per
        send"). This default makes the two calls, so every adapter keeps working."""
        if hits:
            refused, decision = await ratelimits.hit_each(hits, now)
            if refused != ALL_COUNTED:
                raise LimitRefused(refused, decision)
        return await self.enqueue_send(record, envelopes)

    async def get_send(self, key: SendKey) -> SendRecord | None: ...
    async def expire_sends(self, org_id: str, before: float) -> int:
        """Forget this org's sends accepted before ``before``; return how many."""
        ...

    async def fetch(self, user_id: str, device_id: str, limit: int) -> list[QueuedEnvelope]:
        """Oldest first; fetching does not remove (only :meth:`ack` does)."""
        ...

    async def ack(
        self, user_id: str, device_id: str, delivery_ids: Sequence[str]
    ) -> list[QueuedEnvelope]:
        """Delete the named envelopes of this device's queue only; return those deleted."""
        ...

    async def ack_delivered(
        self,
        user_id: str,
        device_id: str,
        org_id: str,
        delivery_ids: Sequence[str],
        delivered_at: float,
    ) -> list[QueuedEnvelope]:
        """:meth:`ack`, then a delivery proof (:func:`delivery_proof`) of each envelope it
        deleted, as :meth:`record_deliveries` (a repeated ack keeps the first proof); the
        envelopes deleted. ``org_id`` is the acking device's org: its envelopes are usually
        all of it, and an adapter that keeps an org's proofs apart may then do both in one
        step (Redis, one server: one script, one round trip instead of three; issue #16 item
        4). This default makes the two calls; any envelope of another org is acked too."""
        acked = await self.ack(user_id, device_id, delivery_ids)
        await self.record_deliveries([delivery_proof(e, delivered_at) for e in acked])
        return acked

    async def count(self, user_id: str, device_id: str) -> int: ...
    async def delete_device_queue(self, user_id: str, device_id: str) -> int: ...
    async def expire(self, org_id: str, before: float) -> int:
        """Delete this org's envelopes received before ``before``; return how many."""
        ...

    async def record_delivery(self, proof: DeliveryProof) -> None: ...
    async def record_deliveries(self, proofs: Sequence[DeliveryProof]) -> int:
        """Record each proof whose delivery id has none yet (a repeated ack keeps the first
        proof); return how many were new. One ack's proofs in one call (the default
        :meth:`ack_delivered`), so a network adapter can make it one round trip (Redis: one
        script per org); this default makes one :meth:`record_delivery` per proof."""
        new = 0
        for proof in proofs:
            try:
                await self.record_delivery(proof)
            except AlreadyExists:
                continue
            new += 1
        return new

    async def list_deliveries(
        self, org_id: str, after: str | None, limit: int
    ) -> list[DeliveryProof]: ...
    async def expire_deliveries(self, org_id: str, before: float) -> int: ...


# --- attachments ----------------------------------------------------------------------------


@dataclass(frozen=True)
class AttachmentMeta:
    """Ciphertext-only attachment (ADR-0157): sizes, hash and who may read; no names/MIME."""

    file_id: str
    org_id: str
    owner_user_id: str
    owner_device_id: str
    size: int
    sha256: bytes
    recipients: tuple[str, ...]
    created_at: float
    committed: bool = False


class AttachmentStore(Protocol):
    async def put_meta(self, meta: AttachmentMeta) -> None: ...  # AlreadyExists
    async def get_meta(self, file_id: str) -> AttachmentMeta | None: ...
    async def mark_committed(self, file_id: str) -> bool: ...
    async def delete_meta(self, file_id: str) -> bool: ...
    async def expired(self, org_id: str, before: float) -> list[str]:
        """File ids of this org created before ``before`` (the caller deletes blob + meta)."""
        ...


class BlobStore(Protocol):
    async def put(self, key: str, data: bytes) -> None: ...
    async def get(self, key: str) -> bytes | None: ...
    async def delete(self, key: str) -> bool: ...


# --- audit ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditEvent:
    """One organisation-scoped audit event (schema: docs/audit-schema.md).

    ``seq`` is assigned by the store, strictly increasing per organisation, and is the paging
    and export cursor.
    """

    org_id: str
    event_type: str
    at: float
    actor_user_id: str | None = None
    actor_device_id: str | None = None
    subject_user_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    event_id: str = ""
    seq: int = 0
    schema_version: int = 1


@dataclass(frozen=True)
class AuditQuery:
    org_id: str
    event_types: tuple[str, ...] = ()
    actor_user_id: str | None = None
    subject_user_id: str | None = None
    since: float | None = None
    until: float | None = None
    after_seq: int = 0
    limit: int = 100


class AuditStore(Protocol):
    async def append(self, event: AuditEvent) -> AuditEvent:
        """Store the event with the next ``seq`` of its org; return it as stored."""
        ...

    async def query(self, query: AuditQuery) -> list[AuditEvent]:
        """Matching events of ``query.org_id`` with ``seq > after_seq``, ascending."""
        ...

    async def expire(self, org_id: str, before: float) -> int: ...


# --- rate limits ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    retry_after: int = 0  # whole seconds until the window frees a slot


RateHit = tuple[str, int, float]
"""(key, limit, window) of one :meth:`RateLimitStore.hit`."""
ALL_COUNTED = -1
"""The index :meth:`RateLimitStore.hit_each` answers when no hit was refused."""


class LimitRefused(StorageError):
    """A rate-limit hit counted with a write (:meth:`QueueStore.enqueue_send_limited`) was
    refused, so nothing was written: ``index`` is the refused hit's position, ``decision``
    its :class:`RateDecision` (``allowed`` False, ``retry_after``), as
    :meth:`RateLimitStore.hit_each` answers them."""

    def __init__(self, index: int, decision: RateDecision) -> None:
        super().__init__(f"rate-limit hit {index} refused")
        self.index = index
        self.decision = decision


class RateLimitStore(Protocol):
    async def hit(self, key: str, limit: int, window: float, now: float) -> RateDecision:
        """Count one hit of ``key`` in the fixed window containing ``now``."""
        ...

    async def hit_each(self, hits: Sequence[RateHit], now: float) -> tuple[int, RateDecision]:
        """Count ``hits`` in order, as :meth:`hit` each, stopping at the first refused one:
        ``(its index, its decision)``, or ``(ALL_COUNTED, allowed)``. The relay's per-send
        counters (per IP and per account; per sender and per recipient) in one call, so a
        network adapter can make it one round trip (Redis: one script); this default makes
        one :meth:`hit` per counter."""
        for i, (key, limit, window) in enumerate(hits):
            decision = await self.hit(key, limit, window, now)
            if not decision.allowed:
                return i, decision
        return ALL_COUNTED, RateDecision(True, 0)


# --- the bundle the relay is given ----------------------------------------------------------


@runtime_checkable
class Dumpable(Protocol):
    async def dump(self) -> list[tuple[str, bytes]]:
        """Every stored record as (location, bytes): what an adversary holding the store sees.

        Used by the plaintext-absence oracle (SPEC §8); not used by the relay.
        """
        ...


@dataclass
class Stores:
    """All ports a relay needs. Adapters may mix (e.g. MongoDB accounts, Redis queues)."""

    accounts: AccountStore
    tokens: TokenStore
    keys: KeyStore
    queues: QueueStore
    attachments: AttachmentStore
    blobs: BlobStore
    audit: AuditStore
    ratelimits: RateLimitStore
    closers: list[Any] = field(default_factory=list)

    async def dump(self) -> list[tuple[str, bytes]]:
        """Concatenated dumps of every distinct dumpable component."""
        seen: set[int] = set()
        out: list[tuple[str, bytes]] = []
        for part in (
            self.accounts,
            self.tokens,
            self.keys,
            self.queues,
            self.attachments,
            self.blobs,
            self.audit,
            self.ratelimits,
            *self.closers,
        ):
            if id(part) in seen or not isinstance(part, Dumpable):
                continue
            seen.add(id(part))
            out.extend(await part.dump())
        return out

    async def compact(self) -> None:
        """Make deletions physical (e.g. SQLite WAL checkpoint): run after retention."""
        for closer in self.closers:
            if hasattr(closer, "compact"):
                result = closer.compact()
                if hasattr(result, "__await__"):
                    await result

    async def close(self) -> None:
        for closer in self.closers:
            result = closer.close()
            if hasattr(result, "__await__"):
                await result
