"""The relay's account cache (semafore/server/account_cache.py, issue #16 item 4).

- In the steady state a send reads nothing from the account, key or token stores (on the
  real backends: no MongoDB read), counted by a wrapper over those ports.
- A device added or removed through another replica reaches this replica's cache through
  the push hub, so no stale device set is used: a stale set would *accept* a send that
  misses the new device (or names the removed one), which the tests show happens when the
  hub does not carry the notice.

Two in-process replicas on shared stores, each with its hub on one ``LocalPushBus`` (the
embedded stand-in for Redis pub/sub, semafore/deploy/local_push.py); ``RedisPushHub`` carries the
same notice over Redis (tests/backends).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from semafore.deploy.local_push import LocalPushBus
from semafore.protocol.entropy import SeededEntropy
from semafore.protocol.keys import DeviceKeys
from semafore.server import models as m
from semafore.server.errors import ApiError
from semafore.server.push import PushHub
from semafore.server.relay import Relay
from semafore.server.settings import Settings, unlimited_rate_limits
from semafore.server.tokens import Principal
from semafore.storage.memory import memory_stores
from semafore.storage.ports import Membership, Org, Stores, TotpEnrolment, User
from tests.server.helpers import b64, key_upload

BODY = b"DRV1" + bytes(100)


class Counting:
    """A store port whose every call is counted by method name (then forwarded)."""

    def __init__(self, inner: Any, counts: Counter[str], port: str) -> None:
        self._inner, self._counts, self._port = inner, counts, port

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr
        counts, key = self._counts, f"{self._port}.{name}"

        def counted(*args: Any, **kwargs: Any) -> Any:
            counts[key] += 1
            return attr(*args, **kwargs)

        return counted


class SilentHub(PushHub):
    """A defective hub: it claims to announce changes but tells no other replica."""

    announces_changes = True


def settings() -> Settings:
    return Settings(
        test_mode=True, test_orgs=frozenset({"acme"}), rate_limits=unlimited_rate_limits()
    )


@asynccontextmanager
async def deployment(hubs: str = "bus") -> AsyncIterator[tuple[Relay, Relay, Counter[str]]]:
    """Replicas A and B on one memory store set; alice (a1) and bob (b1) keyed members."""
    inner = memory_stores()
    counts: Counter[str] = Counter()
    stores = Stores(
        accounts=Counting(inner.accounts, counts, "accounts"),
        tokens=Counting(inner.tokens, counts, "tokens"),
        keys=Counting(inner.keys, counts, "keys"),
        queues=inner.queues,
        attachments=inner.attachments,
        blobs=inner.blobs,
        audit=inner.audit,
        ratelimits=inner.ratelimits,
    )
    acc = inner.accounts
    await acc.create_org_with_admin(
        Org("acme", "Acme", 0.0), User("admin", 0.0), TotpEnrolment("admin", b"\x00" * 20)
    )
    for user in ("alice", "bob"):
        await acc.create_user(User(user, 0.0))
        await acc.put_membership(Membership("acme", user, "member", 0.0))
    bus = LocalPushBus()
    hub_a, hub_b = (bus.hub(), bus.hub()) if hubs == "bus" else (SilentHub(), SilentHub())
    for hub in (hub_a, hub_b):
        await hub.start()
    a, b = Relay(settings(), stores, hub_a), Relay(settings(), stores, hub_b)
    yield a, b, counts
    for hub in (hub_a, hub_b):
        await hub.close()


async def install(relay: Relay, user: str, device: str) -> Principal:
    """Log a device in and publish its keys through ``relay``."""
    req = m.LoginRequest.model_validate(
        {"org_id": "acme", "user_id": user, "device_id": device, "otp": "000000"}
    )
    pair = await relay.login(req, "127.0.0.1")
    principal = await relay.authenticate(pair.access_token)
    keys = DeviceKeys.generate(SeededEntropy(f"{user}:{device}"), opk_count=0)
    await relay.upload_keys(principal, m.KeyUpload.model_validate(key_upload(keys)))
    return principal


async def registration(relay: Relay, user: str, device: str) -> int:
    return (await relay.recipient_devices(user))[device].registration_id


async def send(relay: Relay, sender: Principal, mid: str, devices: dict[str, int]) -> None:
    """A message from ``sender`` to bob's ``devices`` (id → registration id)."""
    envelopes = [
        m.EnvelopeIn.model_validate({"device_id": d, "registration_id": r, "body": b64(BODY)})
        for d, r in devices.items()
    ]
    await relay.accept_message(sender, "bob", mid, envelopes, None)


def test_a_steady_state_send_reads_no_account_key_or_token_store() -> None:
    async def body() -> None:
        async with deployment() as (a, _, counts):
            alice = await install(a, "alice", "a1")
            await install(a, "bob", "b1")
            b1 = {"b1": await registration(a, "bob", "b1")}
            await send(a, alice, "warm-up", b1)
            assert not await a.family_revoked(alice)
            counts.clear()
            for i in range(20):
                await send(a, alice, f"m{i}", b1)
                assert not await a.family_revoked(alice)  # the socket's session re-check
            assert counts == Counter()
            assert a.cache is not None and a.cache.stats["hits"] >= 60

    asyncio.run(body())


def test_without_a_hub_that_announces_changes_nothing_is_cached() -> None:
    """Two ``serve`` processes on one SQLite file share no hub: they must not cache."""

    async def body() -> None:
        async with deployment() as (a, _, counts):
            alice = await install(a, "alice", "a1")
            await install(a, "bob", "b1")
            plain = Relay(settings(), a.stores, PushHub())
            assert plain.cache is None
            b1 = {"b1": await registration(a, "bob", "b1")}
            counts.clear()
            await send(plain, alice, "m", b1)
            assert counts["accounts.get_membership"] == 1
            assert counts["accounts.list_devices"] == 1
            assert counts["keys.published_devices"] == 1

    asyncio.run(body())


async def settled() -> None:
    """In-process hubs deliver a notice synchronously: nothing to wait for."""


async def added_and_removed_on_b(
    a: Relay, b: Relay, settle: Callable[[], Awaitable[None]] = settled
) -> list[str]:
    """Warm A's cache with bob = {b1}; add bob's b2 through B; then remove it through B.
    What A answers to sends that a stale set would accept. ``settle`` waits, after each
    change on B, until the hub could have carried its notice to A."""
    alice = await install(a, "alice", "a1")
    bob = await install(a, "bob", "b1")
    b1 = {"b1": await registration(a, "bob", "b1")}
    await send(a, alice, "warm-up", b1)
    outcomes = []
    await install(b, "bob", "b2")
    await settle()
    try:
        await send(a, alice, "after-add", b1)  # misses b2
        outcomes.append("accepted without b2")
    except ApiError as exc:
        outcomes.append(f"{exc.status} missing {exc.extra['missing']}")
    both = {**b1, "b2": await registration(b, "bob", "b2")}
    await send(a, alice, "with-b2", both)
    await b.remove_device(bob, "b2")
    await settle()
    try:
        await send(a, alice, "after-remove", both)  # names the removed b2
        outcomes.append("accepted with b2")
    except ApiError as exc:
        outcomes.append(f"{exc.status} extra {exc.extra['extra']}")
    return outcomes


def test_a_device_added_or_removed_on_another_replica_reaches_this_cache_via_the_hub() -> None:
    async def body() -> list[str]:
        async with deployment() as (a, b, _):
            return await added_and_removed_on_b(a, b)

    assert asyncio.run(body()) == ["409 missing ['b2']", "409 extra ['b2']"]


def test_a_hub_that_drops_the_notice_would_let_a_stale_set_through() -> None:
    """The negative control: the same steps, replicas whose hubs carry no notice."""

    async def body() -> list[str]:
        async with deployment("silent") as (a, b, _):
            return await added_and_removed_on_b(a, b)

    assert asyncio.run(body()) == ["accepted without b2", "accepted with b2"]


@pytest.mark.parametrize("change", ["logout", "membership"])
def test_revocations_on_another_replica_reach_this_cache(change: str) -> None:
    async def body() -> None:
        async with deployment() as (a, b, _):
            admin = Principal("admin", "acme", "d", "admin", "fam")
            alice = await install(a, "alice", "a1")
            await install(a, "bob", "b1")
            assert not await a.family_revoked(alice)
            assert await a._member_ids("acme", "bob") is not None
            if change == "logout":
                await b.logout(alice)
                assert await a.family_revoked(alice)
            else:
                await a.stores.accounts.put_membership(Membership("acme", "admin", "admin", 0))
                await b.remove_member(admin, "acme", "bob")
                assert await a._member_ids("acme", "bob") is None

    asyncio.run(body())


class _SlowMemberships:
    """An account store whose membership read takes ``delay`` seconds; counts the reads."""

    def __init__(self, stores: Stores, delay: float) -> None:
        self.inner, self.delay, self.reads = stores.accounts, delay, 0

    async def get_membership(self, org_id: str, user_id: str) -> Membership | None:
        self.reads += 1
        await asyncio.sleep(self.delay)
        return await self.inner.get_membership(org_id, user_id)


@pytest.mark.anyio
async def test_concurrent_misses_share_one_read_and_a_drop_starts_a_fresh_one() -> None:
    """A burst of sends to a user whose entry is new asks the store once, not once per send;
    a change notice during that read makes later callers read again (the read belongs to the
    dropped entry)."""
    from semafore.server.account_cache import AccountCache

    stores = memory_stores()
    await stores.accounts.create_org(Org("o1", "O", 1.0))
    await stores.accounts.create_user(User("bob", 1.0))
    await stores.accounts.put_membership(Membership("o1", "bob", "member", 1.0))
    slow = _SlowMemberships(stores, 0.05)
    cache = AccountCache(dataclasses.replace(stores, accounts=slow))  # type: ignore[arg-type]
    burst = [asyncio.ensure_future(cache.membership("o1", "bob", 10.0)) for _ in range(20)]
    found = await asyncio.gather(*burst)
    assert all(f is not None and f.user_id == "bob" for f in found)
    assert slow.reads == 1
    assert cache.stats["shared"] == 19

    cache.drop("bob")
    first = asyncio.ensure_future(cache.membership("o1", "bob", 10.0))
    await asyncio.sleep(0.01)
    cache.drop("bob")  # a change while the read is on its way
    second = asyncio.ensure_future(cache.membership("o1", "bob", 10.0))
    await asyncio.gather(first, second)
    assert slow.reads == 3  # the second did not take the dropped entry's read
