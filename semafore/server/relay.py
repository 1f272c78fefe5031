"""The relay's behaviour, independent of HTTP: every API operation is one method here.

Routes (``semafore.server.routes``) and the WebSocket loop only translate wire formats and
call these methods, so HTTP and WebSocket sends share one validation path. Every refusal is
an :class:`ApiError` raised *before* any write, so a refused request changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import hmac
import logging
import os
import secrets
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, Protocol, get_args

from semafore import sabotage
from semafore.oracle.leaks import encode
from semafore.protocol import frame as drv1
from semafore.protocol import smx1
from semafore.protocol.errors import ProtocolError
from semafore.protocol.keys import verify_spk
from semafore.protocol.session_cipher import RESET_MAGIC
from semafore.server import models as m
from semafore.server.account_cache import AccountCache
from semafore.server.device_set import recipient_devices
from semafore.server.errors import ApiError
from semafore.server.login_guard import backoff
from semafore.server.oplog import event
from semafore.server.otp_sink import OtpSink
from semafore.server.push import PushHub, PushPort
from semafore.server.sealing import SealError, seal, unseal
from semafore.server.send_order import Turn
from semafore.server.settings import Settings
from semafore.server.tokens import (
    Principal,
    TokenError,
    family_role,
    issue_access,
    issue_refresh,
    new_family_id,
    rotate_refresh,
    verify_access,
)
from semafore.server.totp import matching_step, provisioning_uri, secret_base32
from semafore.storage.ports import (
    ALL_COUNTED,
    BROADCAST,
    AlreadyExists,
    AttachmentMeta,
    AuditEvent,
    AuditQuery,
    Device,
    EnvelopeKind,
    IdentityRecord,
    Invitation,
    LimitRefused,
    Membership,
    OneTimePrekeyRecord,
    Org,
    OtpChallenge,
    QueuedEnvelope,
    RateDecision,
    RateHit,
    RetentionPolicy,
    SendRecord,
    SignedPrekeyRecord,
    Stores,
    TotpEnrolment,
    User,
    delivery_proof,
    hot_record,
)

ENVELOPE_MAGICS = (b"SMX1", b"DRV1")
ENVELOPE_MIN_LENGTH = {b"SMX1": smx1.MIN_LENGTH, b"DRV1": drv1.MIN_LENGTH}
"""Smallest well-formed body per magic (SPEC §2 SMX1 header + tag, SPEC §3 DR_V1 header +
tag): anything shorter cannot be that envelope and is refused, typed (issue 13 F-13)."""
RESET_LENGTH = len(RESET_MAGIC) + 32
"""A SPEC §4 reset notice is exactly ``"SRS1" || ratchet key``: no room for content."""
AUDIT_TYPES = get_args(m.AuditType)


SEND_LEDGER_MAX_AGE = 30 * 86400.0
"""Longest a send ledger entry lives (seconds) when the org's envelope retention is longer
or unset: a retry comes within minutes; this only keeps the ledger bounded."""
BROADCAST_LOOKUPS = 32
"""Recipients of one broadcast looked up at once (``Relay._check_broadcast``): enough to
overlap the store's round trips, few enough to leave the connection pool to other requests."""

REPLAYABLE = (404, 409, 410)
"""Refusals a retry of an *accepted* send may meet because the world changed since (member
removed, device set changed): the ledger answers those with the original result."""
QUEUE_QUOTAS = (("queue_sender", "pair"), ("queue_recipient", "recipient"))
"""The queue quotas a send to another user counts, in order, as (bucket, scope): how a
refused one is named (``Relay._queue_quota_hits`` builds their counters in this order)."""


class EnvelopeLike(Protocol):
    """One per-device envelope of a send, however it was validated (HTTP model or WS frame)."""

    @property
    def device_id(self) -> str: ...
    @property
    def registration_id(self) -> int: ...
    @property
    def body(self) -> bytes: ...


class DeviceCheck(NamedTuple):
    """The device-set check of one recipient user's envelopes (Signal's 409/410 answers)."""

    missing: list[str]
    extra: list[str]
    stale: list[str]
    reset: bool  # the envelopes are SPEC §4 reset notices, not a message


class OtpOutbox:
    """Where login OTPs go. The reference relay has no mail/SMS gateway: it keeps the last
    code per (org, user) for the simulator to read, like a test mail catcher."""

    def __init__(self) -> None:
        self.codes: dict[tuple[str, str], str] = {}

    def deliver(self, org_id: str, user_id: str, code: str) -> None:
        self.codes[(org_id, user_id)] = code


def unauthorized(code: str = "invalid_token", detail: str = "authentication required") -> ApiError:
    return ApiError(401, code, detail, headers={"WWW-Authenticate": "Bearer"})


DigestItem = tuple[str, str, int, bytes]
"""(recipient user, device id, registration id, body SHA-256): one envelope of a send."""


def send_digest(
    kind: Literal["send", "broadcast"], recipients: Iterable[tuple[str, Sequence[EnvelopeLike]]]
) -> bytes:
    """SHA-256 of a send's canonical envelope set: what makes a retry *the same* send.

    Order-free (sorted) and unambiguous (:func:`canonical_digest`), over the recipient
    users, each envelope's device id, registration id and body SHA-256: a retry re-sending
    the same envelopes in another order matches, any other change does not. Only the digest
    is stored (the ledger never holds a body)."""
    users: list[str] = []
    items: list[DigestItem] = []
    for user_id, envelopes in recipients:
        users.append(user_id)
        items.extend(
            (user_id, e.device_id, e.registration_id, hashlib.sha256(e.body).digest())
            for e in envelopes
        )
    return canonical_digest(kind, users, items)


def entries_digest(
    kind: Literal["send", "broadcast"],
    users: Sequence[str],
    envelopes: Iterable[EnvelopeLike],
    entries: Iterable[QueuedEnvelope],
) -> bytes:
    """:func:`send_digest` of a send about to be queued, reusing the body hashes its queue
    entries already carry (``entries`` in ``envelopes`` order, before any test leak)."""
    items = [
        (e.recipient_user_id, e.recipient_device_id, env.registration_id, e.envelope_hash)
        for env, e in zip(envelopes, entries, strict=True)
    ]
    return canonical_digest(kind, users, items)


def canonical_digest(kind: str, users: Sequence[str], items: Sequence[DigestItem]) -> bytes:
    """Sorted records joined by ASCII separators (0x1d-0x1f): unambiguous because every user
    and device id the relay accepts matches ``[A-Za-z0-9._-]`` (``models.ID_PATTERN``, the
    WebSocket frame parser alike) and registration ids and hex digests cannot hold them."""
    records = "\x1e".join(sorted([f"{u}\x1f{d}\x1f{r}\x1f{h.hex()}" for u, d, r, h in items]))
    recipients = "\x1e".join(sorted(users))
    return hashlib.sha256(
        f"semafore-send-v1\x1d{kind}\x1d{recipients}\x1d{records}".encode()
    ).digest()


@dataclass(frozen=True)
class RetentionReport:
    envelopes: int = 0
    deliveries: int = 0
    attachments: int = 0
    audit_events: int = 0
    sends: int = 0  # send ledger entries forgotten


class Relay:
    def __init__(self, settings: Settings, stores: Stores, hub: PushPort | None = None) -> None:
        self.settings = settings
        self.stores = stores
        self.hub: PushPort = hub if hub is not None else PushHub()
        # Account facts every send reads, cached only where every replica hears of changes
        # (account_cache.py; issue #16 item 4).
        self.cache = AccountCache(stores) if self.hub.announces_changes else None
        if self.cache is not None:
            self.hub.on_user_changed(self._heard_user_changed)
        self.otp_outbox = OtpOutbox()
        # TEST ONLY (Settings.otp_sink, test mode only): issued codes also go to a file.
        self.otp_sink = OtpSink(settings.otp_sink) if settings.otp_sink is not None else None
        # TEST ONLY (sabotage "relay.opk_served_twice"): the defective bundle cache.
        self._bundle_cache: dict[tuple[str, str], OneTimePrekeyRecord | None] = {}
        # TEST ONLY (sabotage "relay.queue_in_process_memory"): envelopes of this process only.
        self._memory_queue: dict[tuple[str, str], dict[str, QueuedEnvelope]] = {}

    def now(self) -> float:
        return self.settings.clock()

    def user_changed(self, user_id: str) -> None:
        """This process changed the user's memberships, devices, keys or sessions: drop
        the cached facts here and announce it to every replica (account_cache.py)."""
        if self.cache is not None:
            self.cache.drop(user_id)
            self.hub.user_changed(user_id)

    def _heard_user_changed(self, user_id: str | None) -> None:
        if self.cache is not None:
            if user_id is None:
                self.cache.clear()
            else:
                self.cache.drop(user_id)

    async def family_revoked(self, principal: Principal) -> bool:
        """Whether the principal's token family is revoked (cached while it is not)."""
        if self.cache is not None:
            return await self.cache.family_revoked(
                principal.family_id, principal.user_id, self.now()
            )
        return await self.stores.tokens.is_family_revoked(principal.family_id)

    # --- cross-cutting --------------------------------------------------------------------

    async def limit(self, bucket: str, ip: str | None, account: str | None = None) -> None:
        """Count one hit per client IP and per account; 429 + Retry-After when over.

        Runs on every send (the per-envelope path): one store call (both counters in order,
        as ``RateLimitStore.hit_each``: one Redis round trip)."""
        quota, window = self.settings.rate_limits[bucket]
        now = self.now()
        if ip is not None and account is not None:
            hits, scopes = self._limit_hits(bucket, ip, account)
            refused, decision = await self.stores.ratelimits.hit_each(hits, now)
            if refused != ALL_COUNTED:
                raise self._rate_limited(bucket, scopes[refused], decision)
            return
        hit = self.stores.ratelimits.hit
        if ip is not None:
            decision = await hit(f"{bucket}:ip:{ip}", quota, window, now)
            if not decision.allowed:
                raise self._rate_limited(bucket, "ip", decision)
        if account is not None:
            decision = await hit(f"{bucket}:account:{account}", quota, window, now)
            if not decision.allowed:
                raise self._rate_limited(bucket, "account", decision)

    def _limit_hits(
        self, bucket: str, ip: str | None, account: str | None
    ) -> tuple[list[RateHit], list[str]]:
        """:meth:`limit`'s counters (per IP, then per account) and their scope names."""
        quota, window = self.settings.rate_limits[bucket]
        hits: list[RateHit] = []
        scopes: list[str] = []
        for scope, key in (("ip", ip), ("account", account)):
            if key is not None:
                hits.append((f"{bucket}:{scope}:{key}", quota, window))
                scopes.append(scope)
        return hits, scopes

    async def quota(self, bucket: str, scope: str, key: str) -> None:
        """Count one hit of ``bucket`` for ``key`` in ``scope`` (a recipient user, a
        sender-recipient pair, a key-directory target: issue 13 F-6, F-9); 429 +
        Retry-After when over. Quotas guard what a *victim* holds (its queue, its one-time
        prekeys), so they are keyed by the victim, not only by the caller."""
        quota, window = self.settings.rate_limits[bucket]
        decision = await self.stores.ratelimits.hit(
            f"{bucket}:{scope}:{key}", quota, window, self.now()
        )
        if not decision.allowed:
            raise self._rate_limited(bucket, scope, decision)

    @staticmethod
    def _rate_limited(bucket: str, scope: str, decision: RateDecision) -> ApiError:
        event("rate_limited", logging.WARNING, bucket=bucket, scope=scope)
        return ApiError(
            429,
            "rate_limited",
            f"too many {bucket} requests; retry later",
            headers={"Retry-After": str(decision.retry_after)},
        )

    async def authenticate(self, token: str | None) -> Principal:
        if not token:
            raise unauthorized("missing_token", "Authorization: Bearer <access token> required")
        try:
            principal = verify_access(self.settings, token, self.now())
        except TokenError as exc:
            raise unauthorized(exc.code, exc.detail) from exc
        if await self.family_revoked(principal):
            raise unauthorized("token_revoked", "session revoked")
        return principal

    async def require_admin(self, principal: Principal, org_id: str) -> None:
        """Admin of *this* org, re-checked in the store (a demotion takes effect at once)."""
        if principal.org_id != org_id or principal.role != "admin":
            raise ApiError(403, "forbidden", "organisation admin required")
        membership = await self.stores.accounts.get_membership(org_id, principal.user_id)
        if membership is None or membership.role != "admin":
            raise ApiError(403, "forbidden", "organisation admin required")

    async def require_member(self, principal: Principal, org_id: str) -> None:
        if principal.org_id != org_id:
            raise ApiError(403, "forbidden", "token is scoped to another organisation")

    async def audit(
        self,
        org_id: str,
        event_type: m.AuditType,  # the one list of event types (docs/audit-schema.md)
        *,
        actor: Principal | None = None,
        actor_user_id: str | None = None,
        subject_user_id: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> AuditEvent:
        stored = await self.stores.audit.append(
            AuditEvent(
                org_id=org_id,
                event_type=event_type,
                at=self.now(),
                actor_user_id=actor.user_id if actor else actor_user_id,
                actor_device_id=actor.device_id if actor else None,
                subject_user_id=subject_user_id,
                details=details or {},
            )
        )
        event("audit_event", org_id=org_id, event_type=event_type, event_id=stored.event_id)
        return stored

    async def _member_ids(self, org_id: str, user_id: str) -> Membership | None:
        if self.cache is not None:
            return await self.cache.membership(org_id, user_id, self.now())
        return await self.stores.accounts.get_membership(org_id, user_id)

    # --- organisations and members --------------------------------------------------------

    async def signup(self, req: m.SignupRequest, ip: str | None) -> m.SignupResponse:
        await self.limit("auth", ip)
        acc = self.stores.accounts
        if await acc.get_org(req.org_id) is not None:
            raise ApiError(409, "org_exists", "organisation id taken", field="body.org_id")
        if await acc.get_user(req.admin_user_id) is not None:
            raise ApiError(409, "user_exists", "user id taken", field="body.admin_user_id")
        now = self.now()
        secret = secrets.token_bytes(20)
        try:  # all or nothing: never an org without its admin, nor an admin without org
            await acc.create_org_with_admin(
                Org(req.org_id, req.name, now),
                User(req.admin_user_id, now),
                self._sealed_totp(req.admin_user_id, secret),
            )
        except AlreadyExists as exc:  # lost a race with a concurrent signup
            raise ApiError(409, "org_exists", "organisation or user id taken") from exc
        await self.audit(
            req.org_id,
            "signup",
            actor_user_id=req.admin_user_id,
            subject_user_id=req.admin_user_id,
            details={"role": "admin"},
        )
        return m.SignupResponse(
            org_id=req.org_id,
            admin_user_id=req.admin_user_id,
            totp_secret=secret_base32(secret),
            totp_uri=provisioning_uri(secret, f"{req.admin_user_id}@{req.org_id}"),
        )

    async def get_org(self, principal: Principal, org_id: str) -> m.OrgOut:
        await self.require_member(principal, org_id)
        org = await self.stores.accounts.get_org(org_id)
        if org is None:
            raise ApiError(404, "not_found", "no such organisation")
        return m.OrgOut(org_id=org.org_id, name=org.name, plan=org.plan, seats=org.seats)

    async def set_subscription(
        self, principal: Principal, org_id: str, req: m.SubscriptionRequest
    ) -> m.OrgOut:
        await self.require_admin(principal, org_id)
        org = await self.stores.accounts.get_org(org_id)
        if org is None:
            raise ApiError(404, "not_found", "no such organisation")
        members = await self.stores.accounts.list_members(org_id)
        if req.seats < len(members):
            raise ApiError(
                409, "seats_below_members", "fewer seats than members", field="body.seats"
            )
        updated = Org(org.org_id, org.name, org.created_at, req.plan, req.seats)
        await self.stores.accounts.update_org(updated)
        await self.audit(
            org_id,
            "subscription_change",
            actor=principal,
            details={
                "plan": req.plan,
                "seats": req.seats,
                "previous_plan": org.plan,
                "previous_seats": org.seats,
            },
        )
        return m.OrgOut(org_id=org_id, name=org.name, plan=req.plan, seats=req.seats)

    async def list_members(self, principal: Principal, org_id: str) -> m.MembersOut:
        await self.require_admin(principal, org_id)
        members = await self.stores.accounts.list_members(org_id)
        return m.MembersOut(
            members=[
                m.MemberOut(user_id=x.user_id, role=x.role, joined_at=x.joined_at) for x in members
            ]
        )

    async def put_member(
        self, principal: Principal, org_id: str, user_id: str, req: m.MemberRequest
    ) -> m.MemberOut:
        await self.require_admin(principal, org_id)
        acc = self.stores.accounts
        org = await acc.get_org(org_id)
        if org is None:
            raise ApiError(404, "not_found", "no such organisation")
        current = await acc.get_membership(org_id, user_id)
        now = self.now()
        if current is None:
            held = bool(await acc.list_memberships(user_id))
            if held and not sabotage.active("relay.enrol_without_consent"):  # TEST ONLY
                return await self._invite(principal, org_id, user_id, req.role)
            await self._require_seat(org)
            if await acc.get_user(user_id) is None:
                with contextlib.suppress(AlreadyExists):  # created concurrently: fine
                    await acc.create_user(User(user_id, now))
            elif not held:  # an id no organisation holds any more: it starts over, empty
                await self._release_user(user_id)
            membership = Membership(org_id, user_id, req.role, now)
            await acc.put_membership(membership)
            self.user_changed(user_id)
            await self.audit(
                org_id,
                "membership_change",
                actor=principal,
                subject_user_id=user_id,
                details={"action": "added", "role": req.role},
            )
        else:
            if current.role == req.role:
                return m.MemberOut(user_id=user_id, role=current.role, joined_at=current.joined_at)
            if current.role == "admin":
                await self._keep_an_admin(org_id, user_id)
            membership = Membership(org_id, user_id, req.role, current.joined_at)
            await acc.put_membership(membership)
            self.user_changed(user_id)
            await self.audit(
                org_id,
                "role_change",
                actor=principal,
                subject_user_id=user_id,
                details={"role": req.role, "previous_role": current.role},
            )
            await self._audit_elsewhere(
                user_id, org_id, {"action": "role_changed", "role": req.role}, actor=principal
            )
        return m.MemberOut(user_id=user_id, role=membership.role, joined_at=membership.joined_at)

    # --- organisation isolation (issue 13: membership needs the user's consent) -----------

    async def _require_seat(self, org: Org) -> None:
        if len(await self.stores.accounts.list_members(org.org_id)) >= org.seats:
            raise ApiError(409, "seats_exhausted", "no free seat in this organisation")

    async def _audit_elsewhere(
        self,
        user_id: str,
        org_id: str,
        details: dict[str, Any],
        *,
        actor: Principal | None = None,
        actor_user_id: str | None = None,
    ) -> None:
        """Record a membership change of ``user_id`` in ``org_id`` in every *other*
        organisation the user belongs to: each org sees where its users join, leave and
        change role (``details.in_org`` names where it happened)."""
        for other in await self.stores.accounts.list_memberships(user_id):
            if other.org_id != org_id:
                await self.audit(
                    other.org_id,
                    "membership_change",
                    actor=actor,
                    actor_user_id=actor_user_id,
                    subject_user_id=user_id,
                    details={**details, "in_org": org_id},
                )

    async def _invite(
        self, principal: Principal, org_id: str, user_id: str, role: Literal["member", "admin"]
    ) -> m.MemberOut:
        """A user of another organisation is only *invited*: the user joins by accepting
        from their own session (``POST /v1/invitations/{org_id}``). Until then this org can
        neither list, message, drain nor log them in."""
        now = self.now()
        await self.stores.accounts.put_invitation(
            Invitation(
                org_id, user_id, role, principal.user_id, now, now + self.settings.invitation_ttl
            )
        )
        await self.audit(
            org_id,
            "membership_change",
            actor=principal,
            subject_user_id=user_id,
            details={"action": "invited", "role": role},
        )
        return m.MemberOut(user_id=user_id, role=role, joined_at=None, status="invited")

    async def _release_user(self, user_id: str) -> None:
        """Wipe what a user id no organisation holds still carries (devices, keys, queues,
        TOTP, sessions, invitations), so whoever adds the id next gets an empty account,
        never a former member's devices or enrolment."""
        acc = self.stores.accounts
        for device in await acc.list_devices(user_id):
            await self.stores.tokens.revoke_device(user_id, device.device_id)
            await self.stores.keys.delete_device_keys(user_id, device.device_id)
            await self.stores.queues.delete_device_queue(user_id, device.device_id)
            await acc.delete_device(user_id, device.device_id)
            self.hub.disconnect_device(user_id, device.device_id)
        self.user_changed(user_id)
        await acc.delete_totp(user_id)
        for invitation in await acc.list_invitations(user_id):
            await acc.delete_invitation(invitation.org_id, user_id)
        event("user_released", user_id=user_id)

    async def list_invitations(self, principal: Principal) -> m.InvitationsOut:
        now = self.now()
        pending = [
            i for i in await self.stores.accounts.list_invitations(principal.user_id)
            if i.expires_at > now
        ]
        return m.InvitationsOut(
            invitations=[
                m.InvitationOut(
                    org_id=i.org_id, role=i.role, invited_by=i.invited_by,
                    invited_at=i.invited_at, expires_at=i.expires_at,
                )
                for i in pending
            ]
        )

    async def _pending_invitation(self, principal: Principal, org_id: str) -> Invitation:
        invitation = await self.stores.accounts.get_invitation(org_id, principal.user_id)
        if invitation is None or invitation.expires_at <= self.now():
            raise ApiError(404, "not_found", "no pending invitation from that organisation")
        return invitation

    async def accept_invitation(self, principal: Principal, org_id: str) -> m.MemberOut:
        """The user's consent: only the invited user's own session turns an invitation
        into a membership (audited in the joined org and in every other org of the user)."""
        invitation = await self._pending_invitation(principal, org_id)
        acc = self.stores.accounts
        org = await acc.get_org(org_id)
        if org is None:
            await acc.delete_invitation(org_id, principal.user_id)
            raise ApiError(404, "not_found", "no such organisation")
        if await acc.get_membership(org_id, principal.user_id) is None:
            await self._require_seat(org)
        membership = Membership(org_id, principal.user_id, invitation.role, self.now())
        await acc.put_membership(membership)
        self.user_changed(principal.user_id)
        await acc.delete_invitation(org_id, principal.user_id)
        details = {"action": "joined", "role": invitation.role}
        await self.audit(
            org_id,
            "membership_change",
            actor=principal,
            subject_user_id=principal.user_id,
            details={**details, "invited_by": invitation.invited_by},
        )
        await self._audit_elsewhere(principal.user_id, org_id, details, actor=principal)
        return m.MemberOut(
            user_id=principal.user_id, role=membership.role, joined_at=membership.joined_at
        )

    async def decline_invitation(self, principal: Principal, org_id: str) -> None:
        await self._pending_invitation(principal, org_id)
        await self.stores.accounts.delete_invitation(org_id, principal.user_id)
        await self.audit(
            org_id,
            "membership_change",
            actor=principal,
            subject_user_id=principal.user_id,
            details={"action": "declined"},
        )

    async def _keep_an_admin(self, org_id: str, leaving_user_id: str) -> None:
        admins = [
            x
            for x in await self.stores.accounts.list_members(org_id)
            if x.role == "admin" and x.user_id != leaving_user_id
        ]
        if not admins:
            raise ApiError(409, "last_admin", "an organisation keeps at least one admin")

    async def remove_member(self, principal: Principal, org_id: str, user_id: str) -> None:
        await self.require_admin(principal, org_id)
        current = await self.stores.accounts.get_membership(org_id, user_id)
        if current is None:
            raise ApiError(404, "not_found", "no such member")
        if current.role == "admin":
            await self._keep_an_admin(org_id, user_id)
        await self.stores.accounts.delete_membership(org_id, user_id)
        # Access tokens are bearer tokens: end the user's sessions in *this* org now (its
        # refresh families revoked; open sockets notice within ``session_recheck``). Their
        # sessions in their other organisations stay: one org cannot log a user out of
        # another (issue 13 F-2).
        await self.stores.tokens.revoke_member(org_id, user_id)
        self.user_changed(user_id)
        await self.audit(
            org_id,
            "membership_change",
            actor=principal,
            subject_user_id=user_id,
            details={"action": "removed", "role": current.role},
        )
        await self._audit_elsewhere(
            user_id, org_id, {"action": "removed", "role": current.role}, actor=principal
        )
        if not await self.stores.accounts.list_memberships(user_id):
            await self._release_user(user_id)

    # --- authentication -------------------------------------------------------------------

    def _otp_hash(self, org_id: str, user_id: str, code: str) -> bytes:
        msg = f"otp\x00{org_id}\x00{user_id}\x00{code}".encode()
        return hmac.digest(self.settings.jwt_secret, msg, "sha256")

    def test_otp_allowed(self, org_id: str) -> bool:
        """ADR-0164: the fixed test OTP needs BOTH explicit test mode and an allow-listed org."""
        if sabotage.active("relay.test_otp_any_org"):  # TEST ONLY (semafore.sabotage)
            return self.settings.test_mode  # the allow-list is never consulted
        return self.settings.test_mode and org_id in self.settings.test_orgs

    async def _test_otp_applies(self, org_id: str, user_id: str) -> bool:
        """ADR-0164, scoped (issue 13 F-1): the test OTP logs in only a member of an
        allow-listed test org who belongs to *no other* organisation, so a test org can
        never become a way into a real org's user."""
        if not self.test_otp_allowed(org_id):
            return False
        orgs = {x.org_id for x in await self.stores.accounts.list_memberships(user_id)}
        return orgs == {org_id}

    @staticmethod
    def _address(ip: str | None) -> str:
        return ip or "-"

    def _login_key(self, org_id: str, user_id: str, ip: str | None) -> str:
        """The ``auth`` throttle's account scope: (org, user, client address), so requests
        naming a victim from elsewhere never use up the victim's own allowance (F-3)."""
        if sabotage.active("relay.login_throttle_by_user"):  # TEST ONLY (semafore.sabotage)
            return user_id  # keyed on the bare user id, whoever asks from wherever
        return f"{org_id}/{user_id}@{self._address(ip)}"

    def _backoff_error(self, challenge: OtpChallenge) -> ApiError:
        wait = max(1, int(challenge.locked_until - self.now() + 0.999))
        event("otp_backoff", logging.WARNING, org_id=challenge.org_id, user_id=challenge.user_id)
        return ApiError(
            429,
            "otp_backoff",
            "too many wrong codes from this address; retry later",
            headers={"Retry-After": str(wait)},
        )

    async def request_otp(self, req: m.OtpRequest, ip: str | None) -> None:
        """Issue a code bound to (org, user, this client address); it replaces only this
        address's previous code. Non-members get a decoy challenge nobody receives, so every
        answer, later guess and backoff looks the same either way (no account enumeration)."""
        await self.limit("auth", ip, self._login_key(req.org_id, req.user_id, ip))
        address = self._address(ip)
        tokens = self.stores.tokens
        previous = await tokens.get_otp(req.org_id, req.user_id, address)
        if previous is not None and previous.locked_until > self.now():
            raise self._backoff_error(previous)
        member = await self._member_ids(req.org_id, req.user_id) is not None
        code = f"{secrets.randbelow(10**6):06d}"
        code_hash = (
            self._otp_hash(req.org_id, req.user_id, code) if member else secrets.token_bytes(32)
        )
        await tokens.put_otp(
            OtpChallenge(
                req.org_id,
                req.user_id,
                code_hash,
                self.now() + self.settings.otp_ttl,
                address,
                strikes=previous.strikes if previous is not None else 0,
            )
        )
        if member:
            self.otp_outbox.deliver(req.org_id, req.user_id, code)
            if self.otp_sink is not None:
                self.otp_sink.deliver(req.org_id, req.user_id, address, code)
            event("otp_issued", org_id=req.org_id, user_id=req.user_id)

    async def _check_otp(self, org_id: str, user_id: str, code: str, ip: str | None) -> bool:
        """Whether ``code`` is the test OTP (where it applies) or this address's pending
        code. A wrong guess counts against this address's code only; the code dies after
        ``otp_max_failures`` and the address backs off (semafore.server.login_guard)."""
        if hmac.compare_digest(code, self.settings.test_otp) and await self._test_otp_applies(
            org_id, user_id
        ):
            event("test_otp_bypass", logging.WARNING, org_id=org_id, user_id=user_id)
            return True
        address = self._address(ip)
        tokens = self.stores.tokens
        now = self.now()
        challenge = await tokens.get_otp(org_id, user_id, address)
        if challenge is None:
            return False
        if challenge.locked_until > now:
            raise self._backoff_error(challenge)
        if challenge.failures >= self.settings.otp_max_failures or now >= challenge.expires_at:
            return False
        if hmac.compare_digest(challenge.code_hash, self._otp_hash(org_id, user_id, code)):
            taken = await tokens.take_otp(org_id, user_id, address)  # a code works once
            return taken is not None and hmac.compare_digest(taken.code_hash, challenge.code_hash)
        if sabotage.active("relay.otp_unlimited_guesses"):  # TEST ONLY (semafore.sabotage)
            return False  # a wrong guess is never counted: the code lives until it expires
        failed = await tokens.fail_otp(org_id, user_id, address)
        if failed is not None and failed.failures >= self.settings.otp_max_failures:
            strikes = failed.strikes + 1
            until = now + backoff(self.settings, strikes)
            await tokens.put_otp(
                dataclasses.replace(
                    failed, code_hash=b"", strikes=strikes, locked_until=until, expires_at=until
                )
            )
            event("otp_dead", logging.WARNING, org_id=org_id, user_id=user_id, strikes=strikes)
        return False

    def _sealed_totp(self, user_id: str, secret: bytes) -> TotpEnrolment:
        return TotpEnrolment(user_id, seal(self.settings.totp_key, user_id, secret))

    async def _check_totp(self, user_id: str, code: str | None) -> bool:
        """True if enrolled and ``code`` is a fresh valid TOTP; raises if enrolled but wrong."""
        enrolment = await self.stores.accounts.get_totp(user_id)
        if enrolment is None:
            return False
        if code is None:
            raise unauthorized("totp_required", "admins must present a TOTP code")
        try:
            secret = unseal(self.settings.totp_key, user_id, enrolment.secret)
        except SealError as exc:  # another relay key, or tampered: fail closed
            event("totp_seed_unreadable", logging.ERROR, user_id=user_id)
            raise unauthorized("invalid_totp", "TOTP code invalid or already used") from exc
        step = matching_step(secret, code, self.now())
        if step is None or not await self.stores.accounts.advance_totp_step(user_id, step):
            raise unauthorized("invalid_totp", "TOTP code invalid or already used")
        return True

    async def _effective_role(
        self, membership: Membership, totp: str | None
    ) -> tuple[Literal["member", "admin"], bool]:
        """(role for the token, whether TOTP enrolment is still required)."""
        if membership.role != "admin":
            return "member", False
        if await self._check_totp(membership.user_id, totp):
            return "admin", False
        return "member", True  # admin rights wait for TOTP enrolment (ADR-0161)

    async def _issue(
        self,
        user_id: str,
        org_id: str,
        device: Device,
        role: Literal["member", "admin"],
        enrolment_required: bool,
        family_id: str | None = None,
        family_expires_at: float | None = None,
    ) -> m.TokenPair:
        now = self.now()
        family_id = family_id or new_family_id(role)
        family_expires_at = family_expires_at or now + self.settings.refresh_family_ttl
        principal = Principal(user_id, org_id, device.device_id, role, family_id)
        refresh = await issue_refresh(
            self.settings,
            self.stores.tokens,
            user_id=user_id,
            org_id=org_id,
            device_id=device.device_id,
            family_id=family_id,
            family_expires_at=family_expires_at,
            now=now,
        )
        return m.TokenPair(
            access_token=issue_access(self.settings, principal, now),
            refresh_token=refresh,
            expires_in=self.settings.access_ttl,
            org_id=org_id,
            user_id=user_id,
            device_id=device.device_id,
            role=role,
            registration_id=device.registration_id,
            totp_enrolment_required=enrolment_required,
        )

    async def login(self, req: m.LoginRequest, ip: str | None) -> m.TokenPair:
        await self.limit("auth", ip, self._login_key(req.org_id, req.user_id, ip))
        membership = await self._member_ids(req.org_id, req.user_id)
        if not await self._check_otp(req.org_id, req.user_id, req.otp, ip) or membership is None:
            event("login_refused", logging.WARNING, org_id=req.org_id, user_id=req.user_id)
            raise unauthorized("invalid_credentials", "unknown account or wrong OTP")
        role, enrolment_required = await self._effective_role(membership, req.totp)
        device = await self.stores.accounts.get_device(req.user_id, req.device_id)
        if device is None:
            devices = await self.stores.accounts.list_devices(req.user_id)
            if len(devices) >= self.settings.max_devices_per_user:
                raise ApiError(403, "device_limit", "too many devices", field="body.device_id")
            device = Device(
                req.user_id, req.device_id, secrets.randbelow(2**31 - 1) + 1, self.now()
            )
            try:
                await self.stores.accounts.add_device(device)
            except AlreadyExists:
                device = await self.stores.accounts.get_device(req.user_id, req.device_id) or device
            else:
                self.user_changed(req.user_id)
                await self.audit(
                    req.org_id,
                    "device_added",
                    actor_user_id=req.user_id,
                    subject_user_id=req.user_id,
                    details={"device_id": req.device_id},
                )
        event("login", org_id=req.org_id, user_id=req.user_id, device_id=req.device_id, role=role)
        return await self._issue(req.user_id, req.org_id, device, role, enrolment_required)

    async def refresh(self, req: m.RefreshRequest, ip: str | None) -> m.TokenPair:
        await self.limit("auth", ip)
        try:
            token = await rotate_refresh(
                self.settings, self.stores.tokens, req.refresh_token, self.now()
            )
        except TokenError as exc:
            if exc.code == "refresh_reused":
                event("refresh_reuse_family_revoked", logging.WARNING)
                if exc.device is not None:  # its open sockets end now, on every replica
                    self.hub.disconnect_device(*exc.device)
                    self.user_changed(exc.device[0])
            raise unauthorized(exc.code, exc.detail) from exc
        membership = await self._member_ids(token.org_id, token.user_id)
        device = await self.stores.accounts.get_device(token.user_id, token.device_id)
        if membership is None or device is None:
            await self.stores.tokens.revoke_family(token.family_id)
            self.user_changed(token.user_id)
            raise unauthorized("token_revoked", "membership or device no longer exists")
        # Refreshing never grants admin without the TOTP that login/switch-org demanded:
        # the role is the store's current one, capped at what the family began with.
        role: Literal["member", "admin"] = "member"
        if membership.role == "admin" and family_role(token.family_id) == "admin":
            role = "admin"
        return await self._issue(
            token.user_id,
            token.org_id,
            device,
            role,
            membership.role == "admin" and role == "member",
            family_id=token.family_id,
            family_expires_at=token.family_expires_at,
        )

    async def switch_org(
        self, principal: Principal, req: m.SwitchOrgRequest, ip: str | None
    ) -> m.TokenPair:
        """A session in another org of the caller, on proof valid for *that* org (ADR-0161,
        issue 13): a login code issued for (target org, user) to this address, and TOTP for
        an admin role there. A session of one org alone never opens another."""
        await self.limit("auth", ip, self._login_key(req.org_id, principal.user_id, ip))
        membership = await self._member_ids(req.org_id, principal.user_id)
        if membership is None:
            event("switch_org_refused", logging.WARNING, org_id=req.org_id, sub=principal.user_id)
            raise ApiError(
                403, "not_a_member", "not a member of that organisation", field="body.org_id"
            )
        if not await self._check_otp(req.org_id, principal.user_id, req.otp, ip):
            event("switch_org_refused", logging.WARNING, org_id=req.org_id, sub=principal.user_id)
            raise unauthorized("invalid_credentials", "wrong or expired OTP for that organisation")
        device = await self.stores.accounts.get_device(principal.user_id, principal.device_id)
        if device is None:
            raise unauthorized("token_revoked", "device no longer registered")
        role, enrolment_required = await self._effective_role(membership, req.totp)
        event("switch_org", org_id=req.org_id, sub=principal.user_id)
        return await self._issue(principal.user_id, req.org_id, device, role, enrolment_required)

    async def logout(self, principal: Principal) -> None:
        await self.stores.tokens.revoke_family(principal.family_id)
        self.user_changed(principal.user_id)
        self.hub.disconnect_device(principal.user_id, principal.device_id)

    async def enrol_totp(
        self, principal: Principal, req: m.TotpEnrolRequest, ip: str | None
    ) -> m.TotpEnrolmentOut:
        """Enrol the TOTP that makes an admin (ADR-0161). Only for an admin of the session's
        org, and only on fresh proof for that org: a login code issued for (org, user) to
        this address (issue 13): a stolen or foreign session alone cannot plant a TOTP.
        Audited in every org the user belongs to (the seed gates admin rights in each)."""
        await self.limit("auth", ip, self._login_key(principal.org_id, principal.user_id, ip))
        membership = await self._member_ids(principal.org_id, principal.user_id)
        if membership is None or membership.role != "admin":
            raise ApiError(403, "forbidden", "TOTP enrolment is for admins of this organisation")
        if await self.stores.accounts.get_totp(principal.user_id) is not None:
            raise ApiError(409, "totp_enrolled", "TOTP already enrolled")
        if not await self._check_otp(principal.org_id, principal.user_id, req.otp, ip):
            raise unauthorized("invalid_credentials", "wrong or expired OTP for this organisation")
        secret = secrets.token_bytes(20)
        await self.stores.accounts.put_totp(self._sealed_totp(principal.user_id, secret))
        for joined in await self.stores.accounts.list_memberships(principal.user_id):
            await self.audit(
                joined.org_id,
                "totp_enrolled",
                actor=principal,
                subject_user_id=principal.user_id,
                details={"in_org": principal.org_id},
            )
        return m.TotpEnrolmentOut(
            totp_secret=secret_base32(secret),
            totp_uri=provisioning_uri(secret, f"{principal.user_id}@{principal.org_id}"),
        )

    # --- devices --------------------------------------------------------------------------

    async def list_devices(self, principal: Principal) -> m.DevicesOut:
        devices = await self.stores.accounts.list_devices(principal.user_id)
        return m.DevicesOut(
            devices=[
                m.DeviceOut(
                    device_id=d.device_id,
                    registration_id=d.registration_id,
                    created_at=d.created_at,
                )
                for d in devices
            ]
        )

    async def remove_device(self, principal: Principal, device_id: str) -> None:
        uid = principal.user_id
        if await self.stores.accounts.get_device(uid, device_id) is None:
            raise ApiError(404, "not_found", "no such device")
        await self.stores.tokens.revoke_device(uid, device_id)
        await self.stores.queues.delete_device_queue(uid, device_id)
        if not sabotage.active("relay.removed_device_stays_registered"):  # TEST ONLY
            await self.stores.keys.delete_device_keys(uid, device_id)
            await self.stores.accounts.delete_device(uid, device_id)
        self.user_changed(uid)
        self.hub.disconnect_device(uid, device_id)
        await self.audit(
            principal.org_id,
            "device_removed",
            actor=principal,
            subject_user_id=uid,
            details={"device_id": device_id},
        )

    # --- key directory --------------------------------------------------------------------

    def _verify_spk(self, ik: bytes, sik: bytes, spk: m.SignedPrekeyIn, field: str) -> None:
        if sabotage.active("relay.accepts_bad_spk_signature"):  # TEST ONLY (semafore.sabotage)
            return
        try:
            verify_spk(sik, spk.key_id, spk.pub, ik, spk.sig)
        except ProtocolError as exc:
            raise ApiError(
                422, "invalid_signature", "SPK signature does not verify", field=field
            ) from exc

    async def upload_keys(self, principal: Principal, req: m.KeyUpload) -> m.KeyCount:
        uid, did = principal.user_id, principal.device_id
        keys = self.stores.keys
        existing = await keys.get_identity(uid, did)
        if existing is not None and (existing.ik != req.ik or existing.sik != req.sik):
            raise ApiError(
                409,
                "identity_mismatch",
                "identity keys of a device never change; re-register",
                field="body.ik",
            )
        self._verify_spk(req.ik, req.sik, req.spk, "body.spk.sig")
        await self._check_opk_batch(uid, did, req.opks, "body.opks")
        if req.opks:  # first: the only write that can still be refused (atomically)
            await self._add_opks(uid, did, req.opks)
        await keys.put_identity(IdentityRecord(uid, did, req.ik, req.sik))
        await keys.set_spk(uid, did, SignedPrekeyRecord(req.spk.key_id, req.spk.pub, req.spk.sig))
        self.user_changed(uid)  # the device may just have joined its recipient device set
        event("keys_uploaded", org_id=principal.org_id, device_id=did, count=len(req.opks))
        return await self.key_count(principal)

    async def _check_opk_batch(
        self, uid: str, did: str, opks: Sequence[m.OneTimePrekeyIn], field: str
    ) -> None:
        seen: set[str] = set()
        for i, opk in enumerate(opks):
            if opk.key_id in seen:
                raise ApiError(
                    422, "duplicate_key_id", "key id repeated", field=f"{field}.{i}.key_id"
                )
            seen.add(opk.key_id)
        if await self.stores.keys.opk_count(uid, did) + len(opks) > self.settings.max_opks_stored:
            raise ApiError(409, "too_many_opks", "one-time prekey pool is full", field=field)

    async def _add_opks(self, uid: str, did: str, opks: Sequence[m.OneTimePrekeyIn]) -> None:
        try:
            await self.stores.keys.add_opks(
                uid, did, [OneTimePrekeyRecord(o.key_id, o.pub) for o in opks]
            )
        except AlreadyExists as exc:
            raise ApiError(
                409, "duplicate_key_id", "a key id is already stored", field="body.opks"
            ) from exc

    async def add_opks(self, principal: Principal, req: m.OpkUpload) -> m.KeyCount:
        uid, did = principal.user_id, principal.device_id
        if await self.stores.keys.get_identity(uid, did) is None:
            raise ApiError(409, "no_identity", "upload identity keys first (PUT /v1/keys)")
        await self._check_opk_batch(uid, did, req.opks, "body.opks")
        await self._add_opks(uid, did, req.opks)
        return await self.key_count(principal)

    async def rotate_spk(self, principal: Principal, req: m.SignedPrekeyIn) -> m.KeyCount:
        uid, did = principal.user_id, principal.device_id
        identity = await self.stores.keys.get_identity(uid, did)
        if identity is None:
            raise ApiError(409, "no_identity", "upload identity keys first (PUT /v1/keys)")
        self._verify_spk(identity.ik, identity.sik, req, "body.sig")
        await self.stores.keys.set_spk(uid, did, SignedPrekeyRecord(req.key_id, req.pub, req.sig))
        self.user_changed(uid)
        event("spk_rotated", org_id=principal.org_id, device_id=did)
        return await self.key_count(principal)

    async def key_count(self, principal: Principal) -> m.KeyCount:
        uid, did = principal.user_id, principal.device_id
        spk = await self.stores.keys.get_spk(uid, did)
        return m.KeyCount(
            opk_count=await self.stores.keys.opk_count(uid, did),
            spk_key_id=spk.key_id if spk else None,
        )

    async def recipient_devices(self, user_id: str) -> dict[str, Device]:
        """The user's recipient device set (``semafore.server.device_set``): the one
        definition the send check and the key directory share."""
        if self.cache is not None:
            return await self.cache.devices(user_id, self.now())
        return await recipient_devices(self.stores, user_id)

    async def _directory_devices(
        self, principal: Principal, user_id: str, device_id: str | None, ip: str | None
    ) -> list[Device]:
        """The key directory's common front: the ``keys`` rate limit, the organisation scope
        (another org's user is unknown) and the device filter of a lookup."""
        await self.limit("keys", ip, principal.user_id)
        if await self._member_ids(principal.org_id, user_id) is None:
            raise ApiError(404, "unknown_user", "no such user in this organisation")
        devices = list((await self.recipient_devices(user_id)).values())  # as the send check
        if device_id is not None:
            devices = [d for d in devices if d.device_id == device_id]
        return devices

    async def fetch_bundles(
        self, principal: Principal, user_id: str, device_id: str | None, ip: str | None
    ) -> m.BundlesOut:
        devices = await self._directory_devices(principal, user_id, device_id, ip)
        # Per-target OPK claim quotas (issue 13 F-9): one member, or the whole organisation,
        # claims at most so many of a user's one-time prekeys per window, whoever asks.
        target = f"{principal.org_id}:{user_id}"
        if not sabotage.active("relay.opk_quota_per_requester"):  # TEST ONLY (semafore.sabotage)
            await self.quota("opk_pair", "pair", f"{principal.user_id}>{target}")
            await self.quota("opk_target", "target", target)
        bundles = []
        for device in devices:
            identity = await self.stores.keys.get_identity(user_id, device.device_id)
            spk = await self.stores.keys.get_spk(user_id, device.device_id)
            if identity is None or spk is None:
                continue  # a device that has not published keys cannot be messaged yet
            opk = await self.stores.keys.claim_opk(user_id, device.device_id)
            if sabotage.active("relay.opk_served_twice"):  # TEST ONLY (semafore.sabotage)
                # a bundle cache that keeps the first OPK it served, never invalidated
                opk = self._bundle_cache.setdefault((user_id, device.device_id), opk)
            bundles.append(
                m.DeviceBundle(
                    user_id=user_id,
                    device_id=device.device_id,
                    registration_id=device.registration_id,
                    ik=identity.ik,
                    sik=identity.sik,
                    spk=m.SignedPrekeyOut(key_id=spk.key_id, pub=spk.public, sig=spk.signature),
                    opk=m.OneTimePrekeyOut(key_id=opk.key_id, pub=opk.public) if opk else None,
                )
            )
        if not bundles:
            raise ApiError(404, "no_keys", "no device of this user has published keys")
        event("bundles_fetched", org_id=principal.org_id, user_id=user_id, count=len(bundles))
        return m.BundlesOut(user_id=user_id, devices=bundles)

    async def fetch_identities(
        self, principal: Principal, user_id: str, device_id: str | None, ip: str | None
    ) -> m.IdentitiesOut:
        """Each device's identity keys, for pinning/verifying (TOFU) without a session.

        Unlike :meth:`fetch_bundles` this claims no one-time prekey: an OPK is spent only
        by a peer that bootstraps with it. Same rate-limit bucket and organisation scope."""
        devices = await self._directory_devices(principal, user_id, device_id, ip)
        out = []
        for device in devices:
            identity = await self.stores.keys.get_identity(user_id, device.device_id)
            if identity is None:
                continue
            out.append(
                m.DeviceIdentity(
                    user_id=user_id,
                    device_id=device.device_id,
                    registration_id=device.registration_id,
                    ik=identity.ik,
                    sik=identity.sik,
                )
            )
        if not out:
            raise ApiError(404, "no_keys", "no device of this user has published keys")
        event("identities_fetched", org_id=principal.org_id, user_id=user_id, count=len(out))
        return m.IdentitiesOut(user_id=user_id, devices=out)

    # --- messages -------------------------------------------------------------------------

    def _envelope_type(
        self, envelopes: Sequence[EnvelopeLike], field: str, allow_reset: bool
    ) -> bool:
        """Validate every body's type; True if the send is a SPEC §4 reset notice.

        A send is either a message (every body SMX1 or DR_V1) or a reset notice (every body
        exactly ``"SRS1" || ratchet key``, 36 bytes: it names a key and can carry nothing
        else). The relay still sees no plaintext either way; it only routes the notice."""
        reset = bool(envelopes) and envelopes[0].body[:4] == RESET_MAGIC and allow_reset
        max_bytes = self.settings.max_envelope_bytes
        for i, env in enumerate(envelopes):
            magic = env.body[:4]
            if len(env.body) > max_bytes:
                raise ApiError(
                    413, "envelope_too_large", "envelope body too large", field=f"{field}.{i}.body"
                )
            if magic in ENVELOPE_MAGICS and not reset:
                if len(env.body) >= ENVELOPE_MIN_LENGTH[magic]:
                    continue  # the usual case: a message envelope in a message
                raise ApiError(
                    400, "truncated_envelope",
                    f"shorter than the smallest {magic.decode()} envelope "
                    f"({ENVELOPE_MIN_LENGTH[magic]} bytes)",
                    field=f"{field}.{i}.body",
                )
            where = f"{field}.{i}.body"
            if magic == RESET_MAGIC and allow_reset:
                if not reset:
                    raise ApiError(
                        422, "mixed_envelope_types",
                        "a send is a message or a reset notice, not both", field=where,
                    )
                if len(env.body) != RESET_LENGTH:
                    raise ApiError(
                        422, "malformed_reset",
                        "a reset notice is 'SRS1' followed by a 32-byte ratchet key",
                        field=where,
                    )
            elif magic in ENVELOPE_MAGICS:
                raise ApiError(
                    422, "mixed_envelope_types",
                    "a send is a message or a reset notice, not both", field=where,
                )
            else:
                raise ApiError(
                    422,
                    "unknown_envelope_type",
                    "body must be an SMX1 or DR_V1 envelope"
                    + (" (or an SRS1 reset notice)" if allow_reset else ""),
                    field=where,
                )
        return reset

    async def _device_check(
        self,
        principal: Principal,
        user_id: str,
        envelopes: Sequence[EnvelopeLike],
        field: str,
        *,
        allow_reset: bool = False,
        fresh: bool = False,
        before_store_read: Callable[[], Awaitable[None]] | None = None,
    ) -> DeviceCheck:
        """Signal's device-set check for one recipient user.

        A message must cover exactly the user's devices (the sender's own device excluded
        for sync copies); a reset notice goes only to the device(s) it concerns, so missing
        devices are fine, but unknown (extra) and re-registered (stale) ones are not."""
        registered = {  # the recipient device set: registered AND keyed (device_set.py)
            d.device_id: d.registration_id
            for d in (await self.recipient_devices(user_id)).values()
        }
        if user_id == principal.user_id:
            registered.pop(principal.device_id, None)  # sync copies go to my *other* devices
        given = [env.device_id for env in envelopes]
        given_set = set(given)
        if len(given_set) != len(given):
            seen: set[str] = set()
            for i, device_id in enumerate(given):
                if device_id in seen:
                    raise ApiError(
                        422,
                        "duplicate_device",
                        "one envelope per device",
                        field=f"{field}.{i}.device_id",
                    )
                seen.add(device_id)
        reset = self._envelope_type(envelopes, field, allow_reset)
        stale = sorted(
            e.device_id
            for e in envelopes
            if registered.get(e.device_id, e.registration_id) != e.registration_id
        )
        if sabotage.active("relay.ignores_stale_registration"):  # TEST ONLY (semafore.sabotage)
            stale = []
        exact = len(given) == len(registered) and registered.keys() >= given_set
        if (stale or not exact) and self.cache is not None and not fresh:
            # a refusal is never answered from the cache: re-read the set once from the
            # store, so a stale cache cannot make a client "repair" a right set
            if before_store_read is not None:
                await before_store_read()
            self.cache.drop(user_id)
            return await self._device_check(
                principal, user_id, envelopes, field, allow_reset=allow_reset, fresh=True
            )
        if exact:
            return DeviceCheck([], [], stale, reset)  # the usual case: exactly the devices
        missing = [] if reset else sorted(registered.keys() - given_set)
        extra = sorted(given_set - registered.keys())
        return DeviceCheck(missing, extra, stale, reset)

    def _queue_entries(
        self,
        principal: Principal,
        user_id: str,
        message_id: str,
        envelopes: Iterable[EnvelopeLike],
        kind: EnvelopeKind,
        now: float,
    ) -> list[QueuedEnvelope]:
        return [
            hot_record(
                QueuedEnvelope,
                delivery_id=os.urandom(16).hex(),
                org_id=principal.org_id,
                message_id=message_id,
                kind=kind,
                sender_user_id=principal.user_id,
                sender_device_id=principal.device_id,
                recipient_user_id=user_id,
                recipient_device_id=env.device_id,
                body=env.body,
                envelope_hash=hashlib.sha256(env.body).digest(),
                received_at=now,
            )
            for env in envelopes
        ]

    async def send(
        self, principal: Principal, user_id: str, req: m.SendRequest, ip: str | None
    ) -> m.SendResponse:
        entries = await self.accept_message(principal, user_id, req.message_id, req.envelopes, ip)
        return m.SendResponse(
            message_id=req.message_id,
            deliveries=[
                m.DeliveryOut(device_id=e.recipient_device_id, delivery_id=e.delivery_id)
                for e in entries
            ],
        )

    async def accept_message(
        self,
        principal: Principal,
        user_id: str,
        message_id: str,
        envelopes: Sequence[EnvelopeLike],
        ip: str | None,
        turn: Turn | None = None,
    ) -> list[QueuedEnvelope]:
        """Check, queue and publish one message's envelope set; the queued entries.

        Shared by HTTP (pydantic-validated ``EnvelopeIn``) and the WebSocket (fast-path
        ``frames.SendEnvelope``): both run this same device-set check and store write.

        Idempotent per (org, sender device, recipient user, ``message_id``) (issue #3): a
        retry of an accepted send gets the original entries (same delivery ids) and queues
        nothing; another envelope set under a used ``message_id`` is 409
        ``message_id_reused`` (when the device-set check passes; else the check's answer).
        The recipient is part of the key because a client's sync copy to its own devices
        carries the message id of the message it copies (``semafore.client``).

        The ``send`` rate limit is counted before anything is read from a store. When the
        account cache holds everything the checks read (the steady state on real backends),
        nothing is read, so the limit is counted later, in the same store call as the queue
        quotas and the enqueue (``QueueStore.enqueue_send_limited``: on one Redis server or
        behind Sentinel one round trip per send, issue #16 item 4); a check that refuses
        counts it before its store re-read and before answering. The outcome is the one
        counting it first gives: over the limit is 429 whatever the checks say, counts no
        queue quota and queues nothing; over a quota queues nothing either.

        ``turn`` (a WebSocket whose sends overlap, :mod:`semafore.server.send_order`): the
        store call waits for it, so a socket's sends are queued in frame order; the caller
        passes it when this returns or raises, whatever happened before the store call."""
        owed = self._send_limit_deferrable(principal, user_id)
        if not owed:
            await self.limit("send", ip, principal.user_id)

        async def count_send_limit() -> None:
            nonlocal owed
            if owed:
                owed = False
                await self.limit("send", ip, principal.user_id)

        try:
            if await self._member_ids(principal.org_id, user_id) is None:
                raise ApiError(404, "unknown_user", "no such user in this organisation")
            missing, extra, stale, reset = await self._device_check(
                principal, user_id, envelopes, "body.envelopes", allow_reset=True,
                before_store_read=count_send_limit,
            )
            if missing or extra:
                raise ApiError(
                    409,
                    "mismatched_devices",
                    "envelopes must cover exactly the current devices",
                    field="body.envelopes",
                    extra={"missing": missing, "extra": extra},
                )
            if stale:
                raise ApiError(
                    410,
                    "stale_devices",
                    "registration ids changed; refetch keys",
                    field="body.envelopes",
                    extra={"stale": stale},
                )
        except ApiError as exc:
            await count_send_limit()  # a refused send counts too; over the limit: 429
            # A retry of an accepted send is answered as it was, even if the recipient's
            # devices changed since: its envelopes are queued already, and a 409/410 would
            # make the client re-encrypt and queue the message a second time. Anything else
            # keeps the check's own refusal (it names what to fix).
            if exc.status not in REPLAYABLE:
                raise
            answer = await self._recorded_answer(principal, user_id, message_id, envelopes)
            if answer is None:
                raise
            return answer
        scopes: list[str] = []  # the send limit's, when still owed
        limits: list[RateHit] = []  # counted with the enqueue, in one store call
        if owed:
            owed = False
            limits, scopes = self._limit_hits("send", ip, principal.user_id)
        limits += self._queue_quota_hits(principal, user_id)
        now = self.now()
        kind: EnvelopeKind = "reset" if reset else "message"
        entries = self._queue_entries(principal, user_id, message_id, envelopes, kind, now)
        digest = entries_digest("send", (user_id,), envelopes, entries)
        record = self._send_record(principal, user_id, message_id, digest, entries, now)
        if self.settings.leak != "off":
            entries = self._leak(principal, message_id, entries)
        if sabotage.active("relay.wrong_device"):  # TEST ONLY (semafore.sabotage)
            entries = _off_by_one_device(entries)
        if sabotage.active("relay.duplicate_delivery"):  # TEST ONLY (semafore.sabotage)
            entries += [dataclasses.replace(e, delivery_id=os.urandom(16).hex()) for e in entries]
        if sabotage.active("relay.drops_sync_copies") and user_id == principal.user_id:
            return entries  # TEST ONLY (semafore.sabotage): "accepted", never queued
        ledger_off = sabotage.active("relay.ledger_off")  # TEST ONLY (semafore.sabotage)
        in_memory = sabotage.active("relay.queue_in_process_memory")  # TEST ONLY, as above
        if turn is not None:
            await turn.wait()
        try:
            if ledger_off or in_memory:  # the limits alone: these never enqueue a send
                refused, decision = (
                    await self.stores.ratelimits.hit_each(limits, now) if limits
                    else (ALL_COUNTED, RateDecision(True, 0))
                )
                if refused != ALL_COUNTED:
                    raise LimitRefused(refused, decision)
            else:
                recorded = await self._store_send(turn, record, entries, limits, now)
        except LimitRefused as refused_hit:
            return await self._limit_refused(
                refused_hit, scopes, principal, user_id, message_id, envelopes
            )
        if ledger_off:  # TEST ONLY (semafore.sabotage)
            await self.stores.queues.enqueue(entries)  # no ledger: a retry is queued again
            self.hub.publish(entries)
            return entries
        if in_memory:  # TEST ONLY (semafore.sabotage)
            for e in entries:  # never written to the shared store
                key = (e.recipient_user_id, e.recipient_device_id)
                self._memory_queue.setdefault(key, {})[e.delivery_id] = e
            self.hub.publish(entries)
            return entries
        if recorded is not None:  # a retry, or its concurrent twin won the race
            return self._replay(principal, recorded, digest, user_id, envelopes, reset)
        self.hub.publish(entries)
        event(
            "message_accepted",
            logging.DEBUG,
            org_id=principal.org_id,
            sender=principal.user_id,
            recipient=user_id,
            message_id=message_id,
            kind=entries[0].kind,
            count=len(entries),
        )
        return entries

    async def _store_send(
        self,
        turn: Turn | None,
        record: SendRecord,
        entries: Sequence[QueuedEnvelope],
        limits: Sequence[RateHit],
        now: float,
    ) -> SendRecord | None:
        """The send's one store call, started in its turn. On a store that applies calls in
        the order they start (``QueueStore.pipelines_sends``) the turn passes as soon as the
        call has started: a task's first step runs before that of any task created after it,
        and the next send's store call is created only after this one's. Otherwise it
        passes once the call answered."""
        queues = self.stores.queues
        call = queues.enqueue_send_limited(record, entries, self.stores.ratelimits, limits, now)
        if turn is None:
            return await call
        if not queues.pipelines_sends:
            try:
                return await call
            finally:
                turn.passed()
        started = asyncio.ensure_future(call)
        turn.passed()
        return await started

    async def _recorded_answer(
        self,
        principal: Principal,
        user_id: str,
        message_id: str,
        envelopes: Sequence[EnvelopeLike],
    ) -> list[QueuedEnvelope] | None:
        """The original answer if this send is a retry of an accepted one (same envelope
        set under its ``message_id``), else None: read only when a check refused the send,
        so the usual path costs no ledger read."""
        recorded = await self.stores.queues.get_send(
            (principal.org_id, principal.user_id, principal.device_id, user_id, message_id)
        )
        digest = send_digest("send", [(user_id, envelopes)])
        if recorded is None or not hmac.compare_digest(recorded.digest, digest):
            return None
        reset = bool(envelopes) and envelopes[0].body[:4] == RESET_MAGIC
        return self._replay(principal, recorded, digest, user_id, envelopes, reset)

    def _send_limit_deferrable(self, principal: Principal, user_id: str) -> bool:
        """Whether :meth:`accept_message` may count the send limit with the queue quotas:
        a send to another user whose membership and device set the cache holds, so the
        checks before it read no store."""
        return (
            self.cache is not None
            and user_id != principal.user_id
            and not sabotage.active("relay.queue_quota_off")
            and self.cache.answers_send(principal.org_id, user_id, self.now())
        )

    def _queue_quota_hits(self, principal: Principal, user_id: str) -> list[RateHit]:
        """Per-sender and per-recipient queue quotas (issue 13 F-6), in :data:`QUEUE_QUOTAS`
        order: one sender fills one user's queues at most ``queue_sender`` messages a
        window, all senders together at most ``queue_recipient``. None for a sync copy to
        the sender's own devices (bounded by its own ``send`` limit). Counted with the
        enqueue, so only for a send that passed every check."""
        if user_id == principal.user_id or sabotage.active("relay.queue_quota_off"):
            return []  # queue_quota_off: TEST ONLY (semafore.sabotage)
        recipient = f"{principal.org_id}:{user_id}"
        limits = self.settings.rate_limits
        return [
            (f"queue_sender:pair:{principal.user_id}>{recipient}", *limits["queue_sender"]),
            (f"queue_recipient:recipient:{recipient}", *limits["queue_recipient"]),
        ]

    async def _limit_refused(
        self,
        refused: LimitRefused,
        scopes: Sequence[str],
        principal: Principal,
        user_id: str,
        message_id: str,
        envelopes: Sequence[EnvelopeLike],
    ) -> list[QueuedEnvelope]:
        """The answer to a send whose limits (the owed send limit's ``scopes``, then the
        queue quotas) refused it, nothing queued: over the send limit 429 ``send``, as if
        counted first; over a quota the original answer if this is a retry of an accepted
        send (it queues nothing), else 429 naming the quota."""
        if refused.index < len(scopes):
            raise self._rate_limited("send", scopes[refused.index], refused.decision)
        bucket, scope = QUEUE_QUOTAS[refused.index - len(scopes)]
        limited = self._rate_limited(bucket, scope, refused.decision)
        answer = await self._recorded_answer(principal, user_id, message_id, envelopes)
        if answer is None:
            raise limited
        return answer

    def _send_record(
        self,
        principal: Principal,
        recipient: str,
        message_id: str,
        digest: bytes,
        entries: Sequence[QueuedEnvelope],
        now: float,
    ) -> SendRecord:
        return SendRecord(
            org_id=principal.org_id,
            sender_user_id=principal.user_id,
            sender_device_id=principal.device_id,
            recipient=recipient,
            message_id=message_id,
            digest=digest,
            deliveries=tuple(
                (e.recipient_user_id, e.recipient_device_id, e.delivery_id) for e in entries
            ),
            accepted_at=now,
            expires_at=now + SEND_LEDGER_MAX_AGE,
        )

    def _check_same_send(self, principal: Principal, recorded: SendRecord, digest: bytes) -> None:
        """409 unless ``digest`` is the recorded send's: a message id names one message."""
        if not hmac.compare_digest(recorded.digest, digest):
            event(
                "message_id_reused",
                logging.WARNING,
                org_id=principal.org_id,
                device_id=principal.device_id,
                message_id=recorded.message_id,
            )
            raise ApiError(
                409,
                "message_id_reused",
                "this message_id was already used for a different envelope set; "
                "a new message needs a new message_id",
                field="body.message_id",
            )

    def _replay(
        self,
        principal: Principal,
        recorded: SendRecord,
        digest: bytes,
        user_id: str,
        envelopes: Sequence[EnvelopeLike],
        reset: bool,
    ) -> list[QueuedEnvelope]:
        """The entries the recorded send queued (same delivery ids), in this retry's
        envelope order; nothing is queued or pushed again."""
        self._check_same_send(principal, recorded, digest)
        ids = {(u, d): i for u, d, i in recorded.deliveries}
        kind: EnvelopeKind = "reset" if reset else "message"
        event(
            "message_retry_answered",
            logging.DEBUG,
            org_id=principal.org_id,
            device_id=principal.device_id,
            message_id=recorded.message_id,
            count=len(recorded.deliveries),
        )
        return [
            QueuedEnvelope(
                delivery_id=ids[(user_id, env.device_id)],
                org_id=principal.org_id,
                message_id=recorded.message_id,
                kind=kind,
                sender_user_id=principal.user_id,
                sender_device_id=principal.device_id,
                recipient_user_id=user_id,
                recipient_device_id=env.device_id,
                body=env.body,
                envelope_hash=hashlib.sha256(env.body).digest(),
                received_at=recorded.accepted_at,
            )
            for env in envelopes
        ]

    def _leak(
        self, principal: Principal, message_id: str, entries: list[QueuedEnvelope]
    ) -> list[QueuedEnvelope]:
        """TEST ONLY (Settings.leak): write a plaintext the harness supplies where the
        oracle must find it. Never reachable without ``test_mode``."""
        source = self.settings.leak_source
        plaintext = source(message_id) if source is not None else None
        if not plaintext or not entries:
            return entries
        mode, _, chain = self.settings.leak.partition(":")
        if chain:
            plaintext = encode(chain, plaintext)
        if mode == "log":
            try:
                text = plaintext.decode("utf-8")
            except UnicodeDecodeError:  # a binary chain (gzip…): logged as Latin-1 text
                text = plaintext.decode("latin-1")
            # The processor hashes every field it does not know to be safe, so the leak is
            # the realistic bug: content put in a field it passes raw (``reason``).
            event(
                "leak_probe_plaintext",
                logging.WARNING,
                org_id=principal.org_id,
                message_id=message_id,
                reason=text,
            )
            return entries
        first = dataclasses.replace(entries[0], body=plaintext)
        return [first, *entries[1:]]

    async def broadcast(
        self, principal: Principal, req: m.BroadcastRequest, ip: str | None
    ) -> m.BroadcastResponse:
        await self.limit("send", ip, principal.user_id)
        await self.require_admin(principal, principal.org_id)
        try:
            await self._check_broadcast(principal, req)
        except ApiError as exc:  # as in accept_message: a retry gets its original answer
            if exc.status not in REPLAYABLE:
                raise
            recorded = await self.stores.queues.get_send(
                (principal.org_id, principal.user_id, principal.device_id, BROADCAST,
                 req.message_id)
            )
            digest = send_digest("broadcast", [(r.user_id, r.envelopes) for r in req.recipients])
            if recorded is None or not hmac.compare_digest(recorded.digest, digest):
                raise
            return self._replay_broadcast(principal, req, recorded)
        now = self.now()
        entries = [
            entry
            for r in req.recipients
            for entry in self._queue_entries(
                principal, r.user_id, req.message_id, r.envelopes, "broadcast", now
            )
        ]
        digest = entries_digest(
            "broadcast",
            [r.user_id for r in req.recipients],
            [env for r in req.recipients for env in r.envelopes],
            entries,
        )
        record = self._send_record(principal, BROADCAST, req.message_id, digest, entries, now)
        recorded = await self.stores.queues.enqueue_send(record, entries)
        if recorded is not None:
            return self._replay_broadcast(principal, req, recorded)
        self.hub.publish(entries)
        await self.audit(
            principal.org_id,
            "broadcast",
            actor=principal,
            details={
                "message_id": req.message_id,
                "recipients": len(req.recipients),
                "deliveries": len(entries),
            },
        )
        return m.BroadcastResponse(
            message_id=req.message_id, recipients=len(req.recipients), deliveries=len(entries)
        )

    def _replay_broadcast(
        self, principal: Principal, req: m.BroadcastRequest, recorded: SendRecord
    ) -> m.BroadcastResponse:
        digest = send_digest("broadcast", [(r.user_id, r.envelopes) for r in req.recipients])
        self._check_same_send(principal, recorded, digest)
        return m.BroadcastResponse(
            message_id=req.message_id,
            recipients=len(req.recipients),
            deliveries=len(recorded.deliveries),
        )

    async def _check_broadcast(self, principal: Principal, req: m.BroadcastRequest) -> None:
        """Every recipient a member, every envelope set exactly its devices (else 404/409/410).

        The recipients are looked up concurrently, at most :data:`BROADCAST_LOOKUPS` at a
        time: with the account cache cold (a relay's first broadcast, or every ``CACHE_TTL``)
        a broadcast to 1,000 users was ~3,000 store reads one after another, 5.7 s on
        ``local`` (docs/capacity.md). The answers are then judged in recipient order, so a
        request gets the error the one-by-one check gave it (a repeated recipient, an unknown
        user or a malformed envelope set, whichever comes first)."""
        first: dict[str, int] = {}
        for i, recipient in enumerate(req.recipients):
            first.setdefault(recipient.user_id, i)
        gate = asyncio.Semaphore(BROADCAST_LOOKUPS)

        async def look_up(
            i: int, user_id: str, envelopes: Sequence[EnvelopeLike]
        ) -> DeviceCheck | None:
            async with gate:
                if await self._member_ids(principal.org_id, user_id) is None:
                    return None
                return await self._device_check(
                    principal, user_id, envelopes, f"body.recipients.{i}.envelopes"
                )

        looked = list(first.values())
        answers = dict(
            zip(
                looked,
                await asyncio.gather(
                    *(look_up(i, req.recipients[i].user_id, req.recipients[i].envelopes)
                      for i in looked),
                    return_exceptions=True,
                ),
                strict=True,
            )
        )
        mismatched: list[dict[str, Any]] = []
        stale_users: list[dict[str, Any]] = []
        for i, recipient in enumerate(req.recipients):
            field = f"body.recipients.{i}"
            if first[recipient.user_id] != i:
                raise ApiError(
                    422, "duplicate_recipient", "recipient repeated", field=f"{field}.user_id"
                )
            answer = answers[i]
            if isinstance(answer, BaseException):
                raise answer
            if answer is None:
                raise ApiError(
                    404,
                    "unknown_user",
                    "no such user in this organisation",
                    field=f"{field}.user_id",
                )
            missing, extra, stale, _ = answer
            if missing or extra:
                mismatched.append(
                    {"user_id": recipient.user_id, "missing": missing, "extra": extra}
                )
            if stale:
                stale_users.append({"user_id": recipient.user_id, "stale": stale})
        if mismatched:
            raise ApiError(
                409,
                "mismatched_devices",
                "envelopes must cover exactly each recipient's devices",
                field="body.recipients",
                extra={"mismatched": mismatched},
            )
        if stale_users:
            raise ApiError(
                410,
                "stale_devices",
                "registration ids changed; refetch keys",
                field="body.recipients",
                extra={"stale_users": stale_users},
            )

    async def fetch(self, principal: Principal, limit: int) -> m.EnvelopesOut:
        batch = await self.stores.queues.fetch(principal.user_id, principal.device_id, limit + 1)
        if sabotage.active("relay.queue_in_process_memory"):  # TEST ONLY (semafore.sabotage)
            mine = self._memory_queue.get((principal.user_id, principal.device_id), {})
            batch = [*batch, *mine.values()][: limit + 1]
        return m.EnvelopesOut(
            envelopes=[envelope_out(e) for e in batch[:limit]], more=len(batch) > limit
        )

    async def ack(self, principal: Principal, delivery_ids: Sequence[str]) -> list[str]:
        # one store call per ack: removal and proofs (Redis, one server: one script); a
        # repeated ack keeps the first proof
        now = self.now()
        acked = await self.stores.queues.ack_delivered(
            principal.user_id, principal.device_id, principal.org_id, delivery_ids, now
        )
        if sabotage.active("relay.queue_in_process_memory"):  # TEST ONLY (semafore.sabotage)
            mine = self._memory_queue.get((principal.user_id, principal.device_id), {})
            held = [mine.pop(i) for i in delivery_ids if i in mine]
            await self.stores.queues.record_deliveries([delivery_proof(e, now) for e in held])
            acked = [*acked, *held]
        if acked:
            event(
                "envelopes_acked",
                logging.DEBUG,
                org_id=principal.org_id,
                device_id=principal.device_id,
                count=len(acked),
            )
        return [e.delivery_id for e in acked]

    # --- attachments and screenshots ------------------------------------------------------

    async def create_attachment(
        self, principal: Principal, req: m.AttachmentCreate, ip: str | None = None
    ) -> m.AttachmentCreated:
        await self.limit("attachments", ip, principal.user_id)
        if req.size > self.settings.max_attachment_bytes:
            raise ApiError(
                413, "attachment_too_large", "declared size exceeds the limit", field="body.size"
            )
        for i, user_id in enumerate(req.recipients):
            if await self._member_ids(principal.org_id, user_id) is None:
                raise ApiError(
                    404,
                    "unknown_user",
                    "no such user in this organisation",
                    field=f"body.recipients.{i}",
                )
        file_id = uuid.uuid4().hex
        await self.stores.attachments.put_meta(
            AttachmentMeta(
                file_id=file_id,
                org_id=principal.org_id,
                owner_user_id=principal.user_id,
                owner_device_id=principal.device_id,
                size=req.size,
                sha256=req.sha256,
                recipients=tuple(dict.fromkeys(req.recipients)),
                created_at=self.now(),
            )
        )
        event("attachment_declared", org_id=principal.org_id, file_id=file_id, size=req.size)
        return m.AttachmentCreated(file_id=file_id, max_size=req.size)

    async def upload_meta(
        self, principal: Principal, file_id: str, ip: str | None = None
    ) -> AttachmentMeta:
        await self.limit("attachments", ip, principal.user_id)
        meta = await self.stores.attachments.get_meta(file_id)
        if (
            meta is None
            or meta.org_id != principal.org_id
            or meta.owner_user_id != principal.user_id
        ):
            raise ApiError(404, "not_found", "no such attachment")
        if meta.committed:
            raise ApiError(409, "already_uploaded", "attachment content is immutable")
        return meta

    async def store_attachment(self, meta: AttachmentMeta, data: bytes) -> None:
        if len(data) != meta.size:
            raise ApiError(
                422,
                "size_mismatch",
                f"body is {len(data)} bytes, declared {meta.size}",
                field="body",
            )
        if not hmac.compare_digest(hashlib.sha256(data).digest(), meta.sha256):
            raise ApiError(
                422, "sha256_mismatch", "body does not match the declared SHA-256", field="body"
            )
        await self.stores.blobs.put(meta.file_id, data)
        await self.stores.attachments.mark_committed(meta.file_id)
        event("attachment_stored", org_id=meta.org_id, file_id=meta.file_id, size=meta.size)

    async def download_attachment(
        self, principal: Principal, file_id: str
    ) -> tuple[AttachmentMeta, bytes]:
        meta = await self.stores.attachments.get_meta(file_id)
        allowed = meta is not None and (
            meta.org_id == principal.org_id
            and meta.committed
            and (principal.user_id == meta.owner_user_id or principal.user_id in meta.recipients)
        )
        if not allowed or meta is None:
            raise ApiError(404, "not_found", "no such attachment")
        data = await self.stores.blobs.get(file_id)
        if data is None:
            raise ApiError(404, "not_found", "no such attachment")
        return meta, data

    async def screenshot(
        self, principal: Principal, req: m.ScreenshotReport, ip: str | None = None
    ) -> m.ReportCreated:
        await self.limit("screenshots", ip, principal.user_id)
        if await self._member_ids(principal.org_id, req.peer_user_id) is None:
            raise ApiError(
                404, "unknown_user", "no such user in this organisation", field="body.peer_user_id"
            )
        report_id = uuid.uuid4().hex
        await self.audit(
            principal.org_id,
            "screenshot_report",
            actor=principal,
            subject_user_id=req.peer_user_id,
            details={
                "report_id": report_id,
                "screenshot_sha256": m.b64encode(req.screenshot_sha256),
                "message_ids": req.message_ids,
                "captured_at": req.captured_at,
            },
        )
        return m.ReportCreated(report_id=report_id)

    # --- audit, retention -----------------------------------------------------------------

    async def audit_page(self, principal: Principal, query: AuditQuery) -> m.AuditPage:
        await self.require_admin(principal, query.org_id)
        events = await self.stores.audit.query(query)
        return m.AuditPage(
            events=[audit_out(e) for e in events],
            next_after_seq=events[-1].seq if len(events) == query.limit else None,
        )

    async def deliveries(
        self, principal: Principal, org_id: str, after: str | None, limit: int
    ) -> m.DeliveryPage:
        await self.require_admin(principal, org_id)
        proofs = await self.stores.queues.list_deliveries(org_id, after, limit)
        return m.DeliveryPage(
            deliveries=[
                m.DeliveryProofOut(
                    delivery_id=p.delivery_id,
                    message_id=p.message_id,
                    envelope_hash=p.envelope_hash,
                    sender_user_id=p.sender_user_id,
                    sender_device_id=p.sender_device_id,
                    recipient_user_id=p.recipient_user_id,
                    recipient_device_id=p.recipient_device_id,
                    received_at=p.received_at,
                    delivered_at=p.delivered_at,
                )
                for p in proofs
            ],
            next_after=proofs[-1].delivery_id if len(proofs) == limit else None,
        )

    async def get_retention(self, principal: Principal, org_id: str) -> m.RetentionOut:
        await self.require_admin(principal, org_id)
        policy = await self.stores.accounts.get_retention(org_id) or RetentionPolicy(org_id)
        return m.RetentionOut(
            org_id=org_id,
            envelope_max_age=policy.envelope_max_age,
            attachment_max_age=policy.attachment_max_age,
            audit_max_age=policy.audit_max_age,
        )

    async def put_retention(
        self, principal: Principal, org_id: str, req: m.RetentionIn
    ) -> m.RetentionOut:
        await self.require_admin(principal, org_id)
        await self.stores.accounts.put_retention(
            RetentionPolicy(org_id, req.envelope_max_age, req.attachment_max_age, req.audit_max_age)
        )
        event("retention_policy_set", org_id=org_id)
        return await self.get_retention(principal, org_id)

    async def enforce_retention(self) -> RetentionReport:
        """One enforcement pass over every organisation (ADRs 0093–0097).

        Expired data is deleted, then the store is compacted so the bytes are gone from the
        files too, not just unreachable.
        """
        now = self.now()
        totals = RetentionReport()
        for org in await self.stores.accounts.list_orgs():
            policy = await self.stores.accounts.get_retention(org.org_id)
            # The send ledger lives as long as the envelopes it guards (at most
            # SEND_LEDGER_MAX_AGE): a retry after that is a new send. Bounded for every org.
            ledger_age = SEND_LEDGER_MAX_AGE
            if policy is not None and policy.envelope_max_age is not None:
                ledger_age = min(ledger_age, policy.envelope_max_age)
            sends = await self.stores.queues.expire_sends(org.org_id, now - ledger_age)
            if policy is None:
                totals = dataclasses.replace(totals, sends=totals.sends + sends)
                continue
            envelopes = deliveries = attachments = audit = 0
            if policy.envelope_max_age is not None:
                envelopes = await self.stores.queues.expire(
                    org.org_id, now - policy.envelope_max_age
                )
            if policy.attachment_max_age is not None:
                for file_id in await self.stores.attachments.expired(
                    org.org_id, now - policy.attachment_max_age
                ):
                    await self.stores.blobs.delete(file_id)
                    await self.stores.attachments.delete_meta(file_id)
                    attachments += 1
            if policy.audit_max_age is not None:
                audit = await self.stores.audit.expire(org.org_id, now - policy.audit_max_age)
                deliveries = await self.stores.queues.expire_deliveries(
                    org.org_id, now - policy.audit_max_age
                )
            if envelopes or attachments or audit or deliveries or sends:
                event(
                    "retention_enforced",
                    org_id=org.org_id,
                    envelopes=envelopes,
                    attachments=attachments,
                    audit_events=audit,
                    deliveries=deliveries,
                    sends=sends,
                )
            totals = RetentionReport(
                totals.envelopes + envelopes,
                totals.deliveries + deliveries,
                totals.attachments + attachments,
                totals.audit_events + audit,
                totals.sends + sends,
            )
        await self.stores.compact()
        return totals


def _off_by_one_device(entries: list[QueuedEnvelope]) -> list[QueuedEnvelope]:
    """TEST ONLY (sabotage ``relay.wrong_device``): envelope i queued for device i+1."""
    targets = [e.recipient_device_id for e in entries]
    return [
        dataclasses.replace(e, recipient_device_id=targets[(i + 1) % len(targets)])
        for i, e in enumerate(entries)
    ]


def envelope_out(env: QueuedEnvelope) -> m.EnvelopeOut:
    return m.EnvelopeOut(
        delivery_id=env.delivery_id,
        message_id=env.message_id,
        kind=env.kind,
        sender_user_id=env.sender_user_id,
        sender_device_id=env.sender_device_id,
        body=env.body,
        envelope_hash=env.envelope_hash,
        received_at=env.received_at,
    )


def audit_out(e: AuditEvent) -> m.AuditEventOut:
    return m.AuditEventOut(
        schema_version=e.schema_version,
        event_id=e.event_id,
        seq=e.seq,
        org_id=e.org_id,
        event_type=e.event_type,
        at=e.at,
        actor_user_id=e.actor_user_id,
        actor_device_id=e.actor_device_id,
        subject_user_id=e.subject_user_id,
        details=e.details,
    )
