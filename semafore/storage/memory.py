"""In-memory adapters: the reference behaviour of every port, for tests and the simulator.

Atomicity comes from the event loop: no method awaits between reading and writing, so each
call runs to completion before another starts.
"""

from __future__ import annotations

import json
import math
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, is_dataclass, replace
from typing import Any

from semafore.storage.ports import (
    AccountStore,
    AlreadyExists,
    AttachmentMeta,
    AttachmentStore,
    AuditEvent,
    AuditQuery,
    AuditStore,
    BlobStore,
    DeliveryProof,
    Device,
    IdentityRecord,
    Invitation,
    KeyStore,
    Membership,
    NotFound,
    OneTimePrekeyRecord,
    Org,
    OtpChallenge,
    QueuedEnvelope,
    QueueStore,
    RateDecision,
    RateLimitStore,
    RefreshToken,
    RefreshUse,
    RetentionPolicy,
    SendKey,
    SendRecord,
    SignedPrekeyRecord,
    Stores,
    TokenStore,
    TotpEnrolment,
    User,
    check_signup,
)


def _dump_value(value: Any) -> bytes:
    """Bytes an adversary reading process memory would see for a record (for the oracle)."""

    def enc(v: Any) -> Any:
        if is_dataclass(v) and not isinstance(v, type):
            return enc(asdict(v))
        if isinstance(v, bytes):
            return {"__bytes__": v.hex()}
        if isinstance(v, dict):
            return {str(k): enc(x) for k, x in v.items()}
        if isinstance(v, list | tuple | set):
            return [enc(x) for x in v]
        return v

    return json.dumps(enc(value), sort_keys=True).encode() + b"".join(_iter_bytes(value))


def _iter_bytes(value: Any) -> list[bytes]:
    if is_dataclass(value) and not isinstance(value, type):
        return _iter_bytes(asdict(value))
    if isinstance(value, bytes):
        return [value]
    if isinstance(value, dict):
        return [b for v in value.values() for b in _iter_bytes(v)]
    if isinstance(value, list | tuple | set):
        return [b for v in value for b in _iter_bytes(v)]
    return []


class _Dump:
    _tables: tuple[str, ...] = ()

    async def dump(self) -> list[tuple[str, bytes]]:
        out: list[tuple[str, bytes]] = []
        for name in self._tables:
            table = getattr(self, name)
            items = table.items() if isinstance(table, dict) else enumerate(table)
            for key, value in items:
                out.append((f"memory:{name}:{key!r}", _dump_value(value)))
        return out


class MemoryAccountStore(_Dump, AccountStore):
    _tables = ("orgs", "users", "memberships", "devices", "totp", "retention", "invitations")

    def __init__(self) -> None:
        self.orgs: dict[str, Org] = {}
        self.users: dict[str, User] = {}
        self.memberships: dict[tuple[str, str], Membership] = {}
        self.devices: dict[tuple[str, str], Device] = {}
        self._devices_by_user: dict[str, dict[str, Device]] = {}  # index: O(devices of user)
        self.totp: dict[str, TotpEnrolment] = {}
        self.retention: dict[str, RetentionPolicy] = {}
        self.invitations: dict[tuple[str, str], Invitation] = {}

    async def create_org(self, org: Org) -> None:
        if org.org_id in self.orgs:
            raise AlreadyExists(org.org_id)
        self.orgs[org.org_id] = org

    async def create_org_with_admin(self, org: Org, admin: User, totp: TotpEnrolment) -> None:
        check_signup(org, admin, totp)
        if org.org_id in self.orgs:
            raise AlreadyExists(org.org_id)
        if admin.user_id in self.users:
            raise AlreadyExists(admin.user_id)
        membership = Membership(org.org_id, admin.user_id, "admin", org.created_at)
        # No await from the checks to the last write, so no other task sees half of it; a
        # write that raises anyway (out of memory) undoes the ones before it.
        try:
            self.users[admin.user_id] = admin
            self.orgs[org.org_id] = org
            self.totp[admin.user_id] = totp
            self.memberships[(org.org_id, admin.user_id)] = membership
        except BaseException:
            self.users.pop(admin.user_id, None)
            self.orgs.pop(org.org_id, None)
            self.totp.pop(admin.user_id, None)
            raise

    async def get_org(self, org_id: str) -> Org | None:
        return self.orgs.get(org_id)

    async def update_org(self, org: Org) -> None:
        if org.org_id not in self.orgs:
            raise NotFound(org.org_id)
        self.orgs[org.org_id] = org

    async def list_orgs(self) -> list[Org]:
        return sorted(self.orgs.values(), key=lambda o: o.org_id)

    async def create_user(self, user: User) -> None:
        if user.user_id in self.users:
            raise AlreadyExists(user.user_id)
        self.users[user.user_id] = user

    async def get_user(self, user_id: str) -> User | None:
        return self.users.get(user_id)

    async def put_membership(self, membership: Membership) -> None:
        self.memberships[(membership.org_id, membership.user_id)] = membership

    async def get_membership(self, org_id: str, user_id: str) -> Membership | None:
        return self.memberships.get((org_id, user_id))

    async def list_memberships(self, user_id: str) -> list[Membership]:
        found = [m for (_, u), m in self.memberships.items() if u == user_id]
        return sorted(found, key=lambda m: m.org_id)

    async def list_members(self, org_id: str) -> list[Membership]:
        found = [m for (o, _), m in self.memberships.items() if o == org_id]
        return sorted(found, key=lambda m: m.user_id)

    async def delete_membership(self, org_id: str, user_id: str) -> bool:
        return self.memberships.pop((org_id, user_id), None) is not None

    async def add_device(self, device: Device) -> None:
        key = (device.user_id, device.device_id)
        if key in self.devices:
            raise AlreadyExists(device.device_id)
        self.devices[key] = device
        self._devices_by_user.setdefault(device.user_id, {})[device.device_id] = device

    async def get_device(self, user_id: str, device_id: str) -> Device | None:
        return self.devices.get((user_id, device_id))

    async def list_devices(self, user_id: str) -> list[Device]:
        found = self._devices_by_user.get(user_id, {})
        return [found[k] for k in sorted(found)]

    async def delete_device(self, user_id: str, device_id: str) -> bool:
        self._devices_by_user.get(user_id, {}).pop(device_id, None)
        return self.devices.pop((user_id, device_id), None) is not None

    async def put_totp(self, enrolment: TotpEnrolment) -> None:
        self.totp[enrolment.user_id] = enrolment

    async def get_totp(self, user_id: str) -> TotpEnrolment | None:
        return self.totp.get(user_id)

    async def delete_totp(self, user_id: str) -> bool:
        return self.totp.pop(user_id, None) is not None

    async def advance_totp_step(self, user_id: str, step: int) -> bool:
        current = self.totp.get(user_id)
        if current is None or step <= current.last_step:
            return False
        self.totp[user_id] = replace(current, last_step=step)
        return True

    async def put_retention(self, policy: RetentionPolicy) -> None:
        self.retention[policy.org_id] = policy

    async def get_retention(self, org_id: str) -> RetentionPolicy | None:
        return self.retention.get(org_id)

    async def put_invitation(self, invitation: Invitation) -> None:
        self.invitations[(invitation.org_id, invitation.user_id)] = invitation

    async def get_invitation(self, org_id: str, user_id: str) -> Invitation | None:
        return self.invitations.get((org_id, user_id))

    async def list_invitations(self, user_id: str) -> list[Invitation]:
        found = [i for (_, u), i in self.invitations.items() if u == user_id]
        return sorted(found, key=lambda i: i.org_id)

    async def delete_invitation(self, org_id: str, user_id: str) -> bool:
        return self.invitations.pop((org_id, user_id), None) is not None


class MemoryTokenStore(_Dump, TokenStore):
    _tables = ("refresh", "used", "revoked", "otps")

    def __init__(self) -> None:
        self.refresh: dict[bytes, RefreshToken] = {}
        self.used: set[bytes] = set()
        self.revoked: set[str] = set()
        self.otps: dict[tuple[str, str, str], OtpChallenge] = {}

    async def put_refresh(self, token: RefreshToken) -> None:
        if token.token_hash in self.refresh:
            raise AlreadyExists("refresh token")
        self.refresh[token.token_hash] = token

    async def use_refresh(self, token_hash: bytes) -> RefreshUse | None:
        token = self.refresh.get(token_hash)
        if token is None:
            return None
        reused = token_hash in self.used
        self.used.add(token_hash)
        return RefreshUse(token, reused)

    async def revoke_family(self, family_id: str) -> None:
        self.revoked.add(family_id)

    async def is_family_revoked(self, family_id: str) -> bool:
        return family_id in self.revoked

    async def revoke_device(self, user_id: str, device_id: str) -> None:
        for token in self.refresh.values():
            if token.user_id == user_id and token.device_id == device_id:
                self.revoked.add(token.family_id)

    async def revoke_member(self, org_id: str, user_id: str) -> None:
        for token in self.refresh.values():
            if token.user_id == user_id and token.org_id == org_id:
                self.revoked.add(token.family_id)

    async def put_otp(self, challenge: OtpChallenge) -> None:
        self.otps[(challenge.org_id, challenge.user_id, challenge.address)] = challenge

    async def get_otp(self, org_id: str, user_id: str, address: str) -> OtpChallenge | None:
        return self.otps.get((org_id, user_id, address))

    async def take_otp(self, org_id: str, user_id: str, address: str) -> OtpChallenge | None:
        return self.otps.pop((org_id, user_id, address), None)

    async def fail_otp(self, org_id: str, user_id: str, address: str) -> OtpChallenge | None:
        key = (org_id, user_id, address)
        current = self.otps.get(key)
        if current is None:
            return None
        updated = self.otps[key] = replace(current, failures=current.failures + 1)
        return updated


class MemoryKeyStore(_Dump, KeyStore):
    _tables = ("identities", "spks", "opks")

    def __init__(self) -> None:
        self.identities: dict[tuple[str, str], IdentityRecord] = {}
        self.spks: dict[tuple[str, str], SignedPrekeyRecord] = {}
        self.opks: dict[tuple[str, str], OrderedDict[str, OneTimePrekeyRecord]] = {}
        self._spk_devices: dict[str, set[str]] = {}  # index: O(devices of user)

    async def put_identity(self, identity: IdentityRecord) -> None:
        self.identities[(identity.user_id, identity.device_id)] = identity

    async def get_identity(self, user_id: str, device_id: str) -> IdentityRecord | None:
        return self.identities.get((user_id, device_id))

    async def set_spk(self, user_id: str, device_id: str, spk: SignedPrekeyRecord) -> None:
        self.spks[(user_id, device_id)] = spk
        self._spk_devices.setdefault(user_id, set()).add(device_id)

    async def get_spk(self, user_id: str, device_id: str) -> SignedPrekeyRecord | None:
        return self.spks.get((user_id, device_id))

    async def add_opks(
        self, user_id: str, device_id: str, opks: Sequence[OneTimePrekeyRecord]
    ) -> None:
        pool = self.opks.setdefault((user_id, device_id), OrderedDict())
        ids = [o.key_id for o in opks]
        if len(set(ids)) != len(ids) or any(i in pool for i in ids):
            raise AlreadyExists("opk key_id")
        for opk in opks:
            pool[opk.key_id] = opk

    async def claim_opk(self, user_id: str, device_id: str) -> OneTimePrekeyRecord | None:
        pool = self.opks.get((user_id, device_id))
        if not pool:
            return None
        _, opk = pool.popitem(last=False)
        return opk

    async def opk_count(self, user_id: str, device_id: str) -> int:
        return len(self.opks.get((user_id, device_id), ()))

    async def published_devices(self, user_id: str) -> set[str]:
        spk_devices = self._spk_devices.get(user_id, ())
        return {
            d for d in spk_devices if (user_id, d) in self.spks and (user_id, d) in self.identities
        }

    async def delete_device_keys(self, user_id: str, device_id: str) -> None:
        key = (user_id, device_id)
        self.identities.pop(key, None)
        self.spks.pop(key, None)
        self.opks.pop(key, None)
        self._spk_devices.get(user_id, set()).discard(device_id)


class MemoryQueueStore(_Dump, QueueStore):
    _tables = ("queues", "deliveries", "sends")

    def __init__(self) -> None:
        # (user, device) -> delivery_id -> envelope, in arrival order.
        self.queues: dict[tuple[str, str], OrderedDict[str, QueuedEnvelope]] = {}
        self.deliveries: dict[str, DeliveryProof] = {}
        self.sends: dict[SendKey, SendRecord] = {}
        self._ids: set[str] = set()

    async def enqueue_send(
        self, record: SendRecord, envelopes: Sequence[QueuedEnvelope]
    ) -> SendRecord | None:
        recorded = self.sends.get(record.key)
        if recorded is not None:
            return recorded
        await self.enqueue(envelopes)  # no await point inside: still one step
        self.sends[record.key] = record
        return None

    async def get_send(self, key: SendKey) -> SendRecord | None:
        return self.sends.get(key)

    async def expire_sends(self, org_id: str, before: float) -> int:
        old = [k for k, r in self.sends.items() if k[0] == org_id and r.accepted_at < before]
        for key in old:
            del self.sends[key]
        return len(old)

    async def enqueue(self, envelopes: Sequence[QueuedEnvelope]) -> None:
        ids = {e.delivery_id for e in envelopes}
        if len(ids) != len(envelopes) or not self._ids.isdisjoint(ids):
            raise AlreadyExists("delivery_id")
        queues = self.queues
        for env in envelopes:
            key = (env.recipient_user_id, env.recipient_device_id)
            queue = queues.get(key)
            if queue is None:
                queue = queues[key] = OrderedDict()
            queue[env.delivery_id] = env
        self._ids.update(ids)

    async def fetch(self, user_id: str, device_id: str, limit: int) -> list[QueuedEnvelope]:
        queue = self.queues.get((user_id, device_id))
        if not queue or limit <= 0:
            return []
        out = []
        for env in queue.values():
            out.append(env)
            if len(out) >= limit:
                break
        return out

    async def ack(
        self, user_id: str, device_id: str, delivery_ids: Sequence[str]
    ) -> list[QueuedEnvelope]:
        queue = self.queues.get((user_id, device_id))
        if not queue:
            return []
        out = []
        for delivery_id in dict.fromkeys(delivery_ids):
            env = queue.pop(delivery_id, None)
            if env is not None:
                self._ids.discard(delivery_id)
                out.append(env)
        return out

    async def count(self, user_id: str, device_id: str) -> int:
        return len(self.queues.get((user_id, device_id), ()))

    async def delete_device_queue(self, user_id: str, device_id: str) -> int:
        queue = self.queues.pop((user_id, device_id), OrderedDict())
        for delivery_id in queue:
            self._ids.discard(delivery_id)
        return len(queue)

    async def expire(self, org_id: str, before: float) -> int:
        removed = 0
        for queue in self.queues.values():
            doomed = [
                k for k, e in queue.items() if e.org_id == org_id and e.received_at < before
            ]
            for key in doomed:
                del queue[key]
                self._ids.discard(key)
            removed += len(doomed)
        return removed

    async def record_delivery(self, proof: DeliveryProof) -> None:
        if proof.delivery_id in self.deliveries:
            raise AlreadyExists(proof.delivery_id)
        self.deliveries[proof.delivery_id] = proof

    async def list_deliveries(
        self, org_id: str, after: str | None, limit: int
    ) -> list[DeliveryProof]:
        found = sorted(
            (p for p in self.deliveries.values() if p.org_id == org_id),
            key=lambda p: p.delivery_id,
        )
        if after is not None:
            found = [p for p in found if p.delivery_id > after]
        return found[: max(limit, 0)]

    async def expire_deliveries(self, org_id: str, before: float) -> int:
        doomed = [
            k for k, p in self.deliveries.items() if p.org_id == org_id and p.delivered_at < before
        ]
        for key in doomed:
            del self.deliveries[key]
        return len(doomed)


class MemoryAttachmentStore(_Dump, AttachmentStore):
    _tables = ("metas",)

    def __init__(self) -> None:
        self.metas: dict[str, AttachmentMeta] = {}

    async def put_meta(self, meta: AttachmentMeta) -> None:
        if meta.file_id in self.metas:
            raise AlreadyExists(meta.file_id)
        self.metas[meta.file_id] = meta

    async def get_meta(self, file_id: str) -> AttachmentMeta | None:
        return self.metas.get(file_id)

    async def mark_committed(self, file_id: str) -> bool:
        meta = self.metas.get(file_id)
        if meta is None:
            return False
        self.metas[file_id] = replace(meta, committed=True)
        return True

    async def delete_meta(self, file_id: str) -> bool:
        return self.metas.pop(file_id, None) is not None

    async def expired(self, org_id: str, before: float) -> list[str]:
        return sorted(
            m.file_id for m in self.metas.values() if m.org_id == org_id and m.created_at < before
        )


class MemoryBlobStore(_Dump, BlobStore):
    _tables = ("blobs",)

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    async def put(self, key: str, data: bytes) -> None:
        self.blobs[key] = bytes(data)

    async def get(self, key: str) -> bytes | None:
        return self.blobs.get(key)

    async def delete(self, key: str) -> bool:
        return self.blobs.pop(key, None) is not None


class MemoryAuditStore(_Dump, AuditStore):
    _tables = ("events",)

    def __init__(self) -> None:
        self.events: list[AuditEvent] = []
        self._seq: dict[str, int] = {}

    async def append(self, event: AuditEvent) -> AuditEvent:
        seq = self._seq.get(event.org_id, 0) + 1
        self._seq[event.org_id] = seq
        stored = replace(event, seq=seq, event_id=event.event_id or uuid.uuid4().hex)
        self.events.append(stored)
        return stored

    async def query(self, query: AuditQuery) -> list[AuditEvent]:
        out = []
        for event in self.events:
            if audit_matches(event, query):
                out.append(event)
                if len(out) >= query.limit:
                    break
        return out

    async def expire(self, org_id: str, before: float) -> int:
        kept = [e for e in self.events if not (e.org_id == org_id and e.at < before)]
        removed = len(self.events) - len(kept)
        self.events = kept
        return removed


def audit_matches(event: AuditEvent, query: AuditQuery) -> bool:
    """The filter semantics every audit adapter implements (shared by memory and tests)."""
    return (
        event.org_id == query.org_id
        and event.seq > query.after_seq
        and (not query.event_types or event.event_type in query.event_types)
        and (query.actor_user_id is None or event.actor_user_id == query.actor_user_id)
        and (query.subject_user_id is None or event.subject_user_id == query.subject_user_id)
        and (query.since is None or event.at >= query.since)
        and (query.until is None or event.at < query.until)
    )


class MemoryRateLimitStore(RateLimitStore):
    """Fixed windows in a dict: one lookup and one store per hit (it runs twice per send)."""

    MAX_KEYS = 100_000
    ALLOWED = RateDecision(True, 0)  # frozen: one shared instance for every allowed hit

    def __init__(self) -> None:
        self.windows: dict[str, tuple[int, int]] = {}

    async def hit(self, key: str, limit: int, window: float, now: float) -> RateDecision:
        index = int(now // window)
        windows = self.windows
        entry = windows.get(key)
        if entry is None or entry[0] != index:
            if len(windows) >= self.MAX_KEYS:  # forget closed windows: memory stays bounded
                windows = self.windows = {k: v for k, v in windows.items() if v[0] >= index}
            count = 0
        else:
            count = entry[1]
        if count >= limit:
            windows[key] = (index, count)
            return RateDecision(False, max(1, math.ceil((index + 1) * window - now)))
        windows[key] = (index, count + 1)
        return self.ALLOWED


def memory_stores() -> Stores:
    return Stores(
        accounts=MemoryAccountStore(),
        tokens=MemoryTokenStore(),
        keys=MemoryKeyStore(),
        queues=MemoryQueueStore(),
        attachments=MemoryAttachmentStore(),
        blobs=MemoryBlobStore(),
        audit=MemoryAuditStore(),
        ratelimits=MemoryRateLimitStore(),
    )
