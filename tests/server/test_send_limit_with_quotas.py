"""The send limit counted with the queue quotas (``Relay.accept_message``, issue #16 item 4).

When the account cache answers every check of a send, the relay reads no store before the
rate limits, so it counts the ``send`` limit in the same store call as the queue quotas (on
Redis one round trip instead of two), and that call is the enqueue itself
(``QueueStore.enqueue_send_limited``: on one Redis server the send script counts them). What
must not change:

- a steady-state send costs one rate-limit store call, not two, and on Redis one round trip;
- over the send limit the answer is 429 ``send`` whatever the checks would say, and a send
  refused by the limit counts no queue quota;
- a refused check that re-reads the store counts the send limit *first*: an over-limit sender
  cannot make the relay read the store (the limit's reason to come first).
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from semafore.deploy.local_push import LocalPushBus
from semafore.deploy.settings import ProviderKind
from semafore.deploy.testing import shared_provider
from semafore.server.errors import ApiError
from semafore.server.relay import Relay
from semafore.server.settings import Settings, unlimited_rate_limits
from semafore.storage.memory import memory_stores
from semafore.storage.ports import (
    Membership,
    Org,
    QueueStore,
    RateLimitStore,
    Stores,
    TotpEnrolment,
    User,
)
from semafore.storage.redis import RedisNamespace, RedisQueueStore, RedisRateLimitStore
from tests.server.test_account_cache import Counting, install, registration, send

SEND_QUOTA = 5


@asynccontextmanager
async def relay_with_counts(
    queue_quota: int = 10**9, redis: RedisNamespace | None = None
) -> AsyncIterator[tuple[Relay, Counter[str]]]:
    """One relay with an account cache (its hub announces changes) on memory stores whose
    account, key and rate-limit calls are counted; alice and bob are members of acme. With
    ``redis``, queues and rate limits are that namespace's Redis adapters instead (not
    counted: a counting wrapper is not the Redis store the send script can count in)."""
    inner = memory_stores()
    counts: Counter[str] = Counter()
    queues: QueueStore = inner.queues
    ratelimits: RateLimitStore = Counting(inner.ratelimits, counts, "ratelimits")
    if redis is not None:
        queues, ratelimits = RedisQueueStore(redis), RedisRateLimitStore(redis)
    stores = Stores(
        accounts=Counting(inner.accounts, counts, "accounts"),
        tokens=inner.tokens,
        keys=Counting(inner.keys, counts, "keys"),
        queues=queues,
        attachments=inner.attachments,
        blobs=inner.blobs,
        audit=inner.audit,
        ratelimits=ratelimits,
    )
    await inner.accounts.create_org_with_admin(
        Org("acme", "Acme", 0.0), User("admin", 0.0), TotpEnrolment("admin", b"\x00" * 20)
    )
    for user in ("alice", "bob"):
        await inner.accounts.create_user(User(user, 0.0))
        await inner.accounts.put_membership(Membership("acme", user, "member", 0.0))
    limits = unlimited_rate_limits()
    limits["send"] = (SEND_QUOTA, 3600.0)
    limits["queue_sender"] = (queue_quota, 3600.0)
    settings = Settings(test_mode=True, test_orgs=frozenset({"acme"}), rate_limits=limits)
    hub = LocalPushBus().hub()
    await hub.start()
    try:
        yield Relay(settings, stores, hub), counts
    finally:
        await hub.close()


@asynccontextmanager
async def redis_namespace(url: str | None = None) -> AsyncIterator[RedisNamespace]:
    """A fresh namespace on ``url``, by default the shared ``local`` provider's Redis (one
    server), wiped after."""
    url = url or shared_provider(ProviderKind.LOCAL).endpoints.redis_url
    assert url is not None
    ns = RedisNamespace(url, f"sl{uuid.uuid4().hex[:12]}")
    try:
        yield ns
    finally:
        await ns.drop()
        await ns.close()


def rate_calls(counts: Counter[str]) -> int:
    return sum(n for key, n in counts.items() if key.startswith("ratelimits."))


def store_reads(counts: Counter[str]) -> int:
    return sum(n for key, n in counts.items() if not key.startswith("ratelimits."))


def test_a_steady_state_send_makes_one_rate_limit_call() -> None:
    async def body() -> None:
        async with relay_with_counts() as (relay, counts):
            alice = await install(relay, "alice", "a1")
            await install(relay, "bob", "b1")
            b1 = {"b1": await registration(relay, "bob", "b1")}
            await send(relay, alice, "warm-up", b1)
            counts.clear()
            for i in range(3):
                await send(relay, alice, f"m{i}", b1)
            assert counts == Counter({"ratelimits.hit_each": 3})

    asyncio.run(body())


def test_over_the_send_limit_is_429_send_and_counts_no_queue_quota() -> None:
    async def body() -> None:
        async with relay_with_counts(queue_quota=SEND_QUOTA) as (relay, _):
            alice = await install(relay, "alice", "a1")
            await install(relay, "bob", "b1")
            b1 = {"b1": await registration(relay, "bob", "b1")}
            for i in range(SEND_QUOTA):  # the queue quota is as large: both now full
                await send(relay, alice, f"m{i}", b1)
            for i in range(3):
                with pytest.raises(ApiError) as refused:
                    await send(relay, alice, f"over{i}", b1)
                assert refused.value.status == 429
                assert refused.value.detail.startswith("too many send ")

    asyncio.run(body())


def test_a_refused_check_counts_the_send_limit_before_reading_the_store() -> None:
    async def body() -> None:
        async with relay_with_counts() as (relay, counts):
            alice = await install(relay, "alice", "a1")
            await install(relay, "bob", "b1")
            b1 = {"b1": await registration(relay, "bob", "b1")}
            for i in range(SEND_QUOTA - 2):
                await send(relay, alice, f"m{i}", b1)
            counts.clear()
            with pytest.raises(ApiError) as mismatched:  # under the limit: checked, 409
                await send(relay, alice, "wrong-1", {"b9": 1})
            assert mismatched.value.status == 409
            assert store_reads(counts) > 0  # the refusal was re-checked against the store
            assert rate_calls(counts) == 1
            await send(relay, alice, "last", b1)  # the limit's last hit; bob cached again
            assert relay.cache is not None and relay.cache.answers_send("acme", "bob", relay.now())
            counts.clear()
            with pytest.raises(ApiError) as limited:  # now over: 429, and no store read
                await send(relay, alice, "wrong-2", {"b9": 1})
            assert limited.value.status == 429
            assert store_reads(counts) == 0
            assert rate_calls(counts) == 1

    asyncio.run(body())


@pytest.mark.backend
def test_on_redis_over_the_send_limit_is_429_send_and_queues_nothing() -> None:
    async def body() -> None:
        async with redis_namespace() as ns, relay_with_counts(
            queue_quota=SEND_QUOTA, redis=ns
        ) as (relay, _):
            alice = await install(relay, "alice", "a1")
            await install(relay, "bob", "b1")
            b1 = {"b1": await registration(relay, "bob", "b1")}
            for i in range(SEND_QUOTA):  # the queue quota is as large: both now full
                await send(relay, alice, f"m{i}", b1)
            for i in range(3):
                with pytest.raises(ApiError) as refused:
                    await send(relay, alice, f"over{i}", b1)
                assert refused.value.status == 429
                assert refused.value.detail.startswith("too many send ")
            assert await relay.stores.queues.count("bob", "b1") == SEND_QUOTA
            key = ("acme", "alice", "a1", "bob", "over0")
            assert await relay.stores.queues.get_send(key) is None

    asyncio.run(body())


@pytest.mark.backend
def test_on_redis_a_full_queue_quota_is_429_naming_it_and_a_retry_still_gets_its_answer(
) -> None:
    async def body() -> None:
        async with redis_namespace() as ns, relay_with_counts(
            queue_quota=2, redis=ns
        ) as (relay, _):
            alice = await install(relay, "alice", "a1")
            await install(relay, "bob", "b1")
            b1 = {"b1": await registration(relay, "bob", "b1")}
            await send(relay, alice, "m0", b1)
            await send(relay, alice, "m1", b1)
            with pytest.raises(ApiError) as refused:
                await send(relay, alice, "m2", b1)
            assert refused.value.status == 429
            assert refused.value.detail.startswith("too many queue_sender ")
            assert await relay.stores.queues.count("bob", "b1") == 2
            await send(relay, alice, "m1", b1)  # a retry of an accepted send: answered
            assert await relay.stores.queues.count("bob", "b1") == 2

    asyncio.run(body())
