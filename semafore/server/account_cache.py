"""The relay process's cache of what every send reads from the account and key stores.

Issue #16 item 4: on real backends every send re-read the recipient's membership and device
set, and every session check the token family, from MongoDB (FerretDB), which made the
`local` deployment CPU-bound at 0.05× the embedded relay. These change rarely (a login of a
new device, a key upload, a removal, a membership change, a logout), so each relay process
keeps them and every change drops them **per user**:

- on this process, at once, by the relay method that made the change (``Relay.user_changed``);
- on every other replica through the push hub (``PushPort.user_changed``): the in-process
  hub has no other replica; ``RedisPushHub`` publishes the user id on the deployment's
  pub/sub, and each replica drops its entries when it hears it.

What a stale entry can cost, and why it is bounded:

- Cached are only *positive* facts (a membership that exists, a family not revoked, the
  device set as read), never "not a member": a member added elsewhere is seen at once.
- A send refused by the device-set check from a cached set is checked again against the
  store before the refusal is answered (``Relay.accept_message``), so a cache can never make
  a client repair a set that is right.
- Pub/sub is at-most-once: when the hub's subscription is re-established, every entry is
  dropped (:meth:`AccountCache.clear`), and every entry lives at most ``ttl`` seconds (relay
  clock) anyway, the bound on staleness should a notice be lost without a reconnect.

Concurrent misses share one read: while a read for an entry's fact is on its way, another
caller asking the same entry for it awaits that read instead of starting its own. A busy
relay otherwise sends one store read per send in flight whenever an entry is new or expired
(measured on ``local``: ~120 concurrent membership reads of up to 325 ms at a cold start
with 4 sockets overlapping their sends). The read belongs to its entry, so a caller that comes
after a change dropped the entry starts a fresh read, as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from semafore.server.device_set import recipient_devices
from semafore.storage.ports import Device, Membership, Stores

CACHE_TTL = 30.0
"""Seconds an entry is trusted without a change notice (see the module docstring)."""

T = TypeVar("T")


@dataclass
class _Entry:
    """One user's cached facts and when they were read (relay clock)."""

    read_at: float
    devices: dict[str, Device] | None = None
    memberships: dict[str, Membership] | None = None
    live_families: set[str] | None = None
    reads: dict[tuple[str, str], asyncio.Future[Any]] = field(default_factory=dict)
    """Store reads on their way for this entry, by (fact, key): concurrent misses share one."""


class AccountCache:
    """Per-user cache of memberships, recipient device sets and live token families."""

    def __init__(self, stores: Stores, ttl: float = CACHE_TTL) -> None:
        self.stores = stores
        self.ttl = ttl
        self._users: dict[str, _Entry] = {}
        self.stats = {"hits": 0, "misses": 0, "dropped": 0, "shared": 0}

    def _entry(self, user_id: str, now: float) -> _Entry:
        entry = self._users.get(user_id)
        if entry is None or now - entry.read_at >= self.ttl:
            entry = self._users[user_id] = _Entry(read_at=now)
        return entry

    async def membership(self, org_id: str, user_id: str, now: float) -> Membership | None:
        """``AccountStore.get_membership``, remembered when it exists."""
        entry = self._entry(user_id, now)
        if entry.memberships is not None and org_id in entry.memberships:
            self.stats["hits"] += 1
            return entry.memberships[org_id]
        self.stats["misses"] += 1
        found = await self._read(
            entry, ("membership", org_id),
            lambda: self.stores.accounts.get_membership(org_id, user_id),
        )
        if found is not None and self._users.get(user_id) is entry:  # not dropped meanwhile
            if entry.memberships is None:
                entry.memberships = {}
            entry.memberships[org_id] = found
        return found

    async def devices(self, user_id: str, now: float) -> dict[str, Device]:
        """The recipient device set (``device_set.recipient_devices``), remembered."""
        entry = self._entry(user_id, now)
        if entry.devices is not None:
            self.stats["hits"] += 1
            return entry.devices
        self.stats["misses"] += 1
        found = await self._read(
            entry, ("devices", ""), lambda: recipient_devices(self.stores, user_id)
        )
        if self._users.get(user_id) is entry:  # a change during the read drops the result
            entry.devices = found
        return found

    async def family_revoked(self, family_id: str, user_id: str, now: float) -> bool:
        """``TokenStore.is_family_revoked``; a live family is remembered for its user."""
        entry = self._entry(user_id, now)
        if entry.live_families is not None and family_id in entry.live_families:
            self.stats["hits"] += 1
            return False
        self.stats["misses"] += 1
        revoked = await self._read(
            entry, ("family", family_id),
            lambda: self.stores.tokens.is_family_revoked(family_id),
        )
        if not revoked and self._users.get(user_id) is entry:
            if entry.live_families is None:
                entry.live_families = set()
            entry.live_families.add(family_id)
        return revoked

    async def _read(
        self, entry: _Entry, key: tuple[str, str], read: Callable[[], Awaitable[T]]
    ) -> T:
        """``read()``, or the same read another caller already started for ``entry`` (module
        docstring); a caller cancelled while waiting leaves the read to the others."""
        pending = entry.reads.get(key)
        if pending is None:
            pending = asyncio.ensure_future(read())
            entry.reads[key] = pending

            def finished(done: asyncio.Future[Any]) -> None:
                if entry.reads.get(key) is done:
                    del entry.reads[key]
                if not done.cancelled():
                    done.exception()  # retrieved: every waiter may have been cancelled

            pending.add_done_callback(finished)
        else:
            self.stats["shared"] += 1
        result: T = await asyncio.shield(pending)
        return result

    def answers_send(self, org_id: str, user_id: str, now: float) -> bool:
        """Whether a send to ``user_id`` in ``org_id`` can be checked without a store read:
        the membership and the device set are held and fresh (the relay then counts the send
        limit with the queue quotas, ``Relay.accept_message``)."""
        entry = self._users.get(user_id)
        return (
            entry is not None
            and now - entry.read_at < self.ttl
            and entry.memberships is not None
            and org_id in entry.memberships
            and entry.devices is not None
        )

    def holds(self, user_id: str) -> bool:
        """Whether anything about ``user_id`` is cached (for tests and diagnostics)."""
        return user_id in self._users

    def drop(self, user_id: str) -> None:
        """Forget everything about ``user_id`` (a change was made or announced)."""
        if self._users.pop(user_id, None) is not None:
            self.stats["dropped"] += 1

    def clear(self) -> None:
        """Forget everything (change notices may have been lost)."""
        self.stats["dropped"] += len(self._users)
        self._users.clear()
