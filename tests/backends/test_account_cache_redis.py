"""The relay's account cache on the real backends (FerretDB + Redis, the `local` provider):
two relay replicas on one namespace, each with its ``RedisPushHub``
(semafore/server/account_cache.py, docs/backends.md "Account cache").

- Steady-state sends and session checks read nothing from MongoDB (the account, key and
  token ports are counted; queues and rate limits are Redis).
- A device added or removed through replica B reaches replica A's cache as a Redis pub/sub
  notice, so A refuses what a stale set would accept (the negative control with hubs that
  drop the notice is tests/server/test_account_cache.py)."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace

import pytest

from semafore.deploy.settings import ProviderKind
from semafore.deploy.stores import backend_stores
from semafore.deploy.testing import shared_provider
from semafore.server.relay import Relay
from semafore.storage.ports import Membership, Org, Stores, TotpEnrolment, User
from tests.server.test_account_cache import (
    Counting,
    added_and_removed_on_b,
    install,
    registration,
    send,
    settings,
)

pytestmark = [pytest.mark.backend, pytest.mark.anyio]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@asynccontextmanager
async def replicas() -> AsyncIterator[tuple[Relay, Relay, Counter[str]]]:
    endpoints = shared_provider(ProviderKind.LOCAL).endpoints
    namespace = f"ac{uuid.uuid4().hex[:12]}"
    counts: Counter[str] = Counter()
    opened, relays = [], []
    for name in ("replica-a", "replica-b"):
        stores, handles = await backend_stores(endpoints, namespace)
        opened.append(handles)
        counted: Stores = replace(
            stores,
            accounts=Counting(stores.accounts, counts, "accounts"),
            tokens=Counting(stores.tokens, counts, "tokens"),
            keys=Counting(stores.keys, counts, "keys"),
        )
        hub = handles.push_hub(name)
        await hub.start()
        relays.append(Relay(settings(), counted, hub))
    acc = relays[0].stores.accounts
    await acc.create_org_with_admin(
        Org("acme", "Acme", 0.0), User("admin", 0.0), TotpEnrolment("admin", b"\x00" * 20)
    )
    for user in ("alice", "bob"):
        await acc.create_user(User(user, 0.0))
        await acc.put_membership(Membership("acme", user, "member", 0.0))
    try:
        yield relays[0], relays[1], counts
    finally:
        for relay in relays:
            await relay.hub.close()
        await opened[0].drop()
        for handles in opened:
            await handles.close()


async def test_steady_state_sends_read_nothing_from_mongodb() -> None:
    async with replicas() as (a, _, counts):
        alice = await install(a, "alice", "a1")
        await install(a, "bob", "b1")
        b1 = {"b1": await registration(a, "bob", "b1")}
        await send(a, alice, "warm-up", b1)
        assert not await a.family_revoked(alice)
        counts.clear()
        for i in range(10):
            await send(a, alice, f"m{i}", b1)
            assert not await a.family_revoked(alice)
        assert counts == Counter()


async def test_changes_on_replica_b_reach_replica_a_through_redis() -> None:
    async with replicas() as (a, b, _):
        cache = a.cache
        assert cache is not None

        async def heard() -> None:
            """Until A has dropped bob: the notice crosses Redis asynchronously."""
            for _ in range(1000):
                if not cache.holds("bob"):
                    return
                await asyncio.sleep(0.01)
            raise AssertionError("replica A never heard that bob changed")

        outcomes = await added_and_removed_on_b(a, b, heard)
        assert outcomes == ["409 missing ['b2']", "409 extra ['b2']"]
