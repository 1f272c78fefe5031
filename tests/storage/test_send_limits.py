"""Conformance: ``QueueStore.enqueue_send_limited`` counts a send's rate limits and then
records and queues it, with the outcome of ``RateLimitStore.hit_each`` followed by
``QueueStore.enqueue_send`` (issue #16 item 4: the relay's send in one store call, on one
Redis server one script and so one round trip). Every adapter: the embedded ones and the Redis
Cluster run the port's two-call default, ``local`` the fused script.

What a refusal must leave: no ledger entry and no envelope (never half a send), the hits before
the refused one counted and none after it (over the send limit no queue quota is counted).
"""

from __future__ import annotations

import pytest

from semafore.storage.ports import (
    AlreadyExists,
    LimitRefused,
    RateDecision,
    RateHit,
    Stores,
)
from tests.storage.test_conformance import envelope, send_record

pytestmark = pytest.mark.anyio

NOW = 125.0  # in the 60 s window [120, 180): a refusal's retry_after is 55
KEY = ("o1", "alice", "a1", "bob", "m1")
SEND: RateHit = ("send:account:alice", 3, 60.0)
PAIR: RateHit = ("queue_sender:pair:alice>o1:bob", 2, 60.0)
RECIPIENT: RateHit = ("queue_recipient:recipient:o1:bob", 5, 60.0)
LIMITS = (SEND, PAIR, RECIPIENT)


async def remaining(stores: Stores, hit: RateHit, now: float = NOW) -> int:
    """How many more hits ``hit``'s counter allows in this window (counting them: use once
    per counter, at the end of a test)."""
    key, limit, window = hit
    left = 0
    while left <= limit and (await stores.ratelimits.hit(key, limit, window, now)).allowed:
        left += 1
    return left


async def assert_nothing_sent(stores: Stores) -> None:
    assert await stores.queues.get_send(KEY) is None
    assert await stores.queues.count("bob", "d1") == 0
    assert await stores.queues.fetch("bob", "d1", 10) == []


async def test_within_the_limits_the_send_is_queued_and_every_limit_counted(
    stores: Stores,
) -> None:
    q = stores.queues
    record = send_record("e1")
    assert await q.enqueue_send_limited(
        record, [envelope("e1")], stores.ratelimits, LIMITS, NOW) is None
    assert await q.get_send(KEY) == record
    assert [e.delivery_id for e in await q.fetch("bob", "d1", 10)] == ["e1"]
    assert [await remaining(stores, hit) for hit in LIMITS] == [2, 1, 4]


async def test_over_the_first_limit_nothing_is_written_and_no_later_limit_counted(
    stores: Stores,
) -> None:
    for _ in range(SEND[1]):  # the send limit full, the quotas untouched
        assert (await stores.ratelimits.hit(*SEND, NOW)).allowed
    with pytest.raises(LimitRefused) as refused:
        await stores.queues.enqueue_send_limited(
            send_record("e1"), [envelope("e1")], stores.ratelimits, LIMITS, NOW)
    assert refused.value.index == 0
    assert refused.value.decision == RateDecision(False, 55)
    await assert_nothing_sent(stores)
    assert [await remaining(stores, hit) for hit in (PAIR, RECIPIENT)] == [2, 5]


async def test_a_full_quota_writes_nothing_and_counts_the_limits_before_it(
    stores: Stores,
) -> None:
    for _ in range(PAIR[1]):
        assert (await stores.ratelimits.hit(*PAIR, NOW)).allowed
    with pytest.raises(LimitRefused) as refused:
        await stores.queues.enqueue_send_limited(
            send_record("e1"), [envelope("e1")], stores.ratelimits, LIMITS, NOW)
    assert (refused.value.index, refused.value.decision) == (1, RateDecision(False, 55))
    await assert_nothing_sent(stores)
    assert [await remaining(stores, hit) for hit in (SEND, RECIPIENT)] == [2, 5]


async def test_the_last_quota_full_names_its_own_index_and_window(stores: Stores) -> None:
    recipient: RateHit = (RECIPIENT[0], 1, 10.0)  # window [120, 130): retry after 5
    assert (await stores.ratelimits.hit(*recipient, NOW)).allowed
    with pytest.raises(LimitRefused) as refused:
        await stores.queues.enqueue_send_limited(
            send_record("e1"), [envelope("e1")], stores.ratelimits,
            (SEND, PAIR, recipient), NOW)
    assert (refused.value.index, refused.value.decision) == (2, RateDecision(False, 5))
    await assert_nothing_sent(stores)
    assert [await remaining(stores, hit) for hit in (SEND, PAIR)] == [2, 1]


async def test_a_refused_send_leaves_its_key_free_for_the_same_send_later(
    stores: Stores,
) -> None:
    q = stores.queues
    send: RateHit = (SEND[0], 1, 60.0)
    record = send_record("e1")
    assert await q.enqueue_send_limited(
        send_record("e0", message_id="m0"), [envelope("e0")], stores.ratelimits, (send,), NOW
    ) is None
    with pytest.raises(LimitRefused):
        await q.enqueue_send_limited(record, [envelope("e1")], stores.ratelimits, (send,), NOW)
    await q.enqueue_send_limited(  # the next window: the retry is a new send, queued once
        record, [envelope("e1")], stores.ratelimits, (send,), NOW + 60.0)
    assert await q.get_send(KEY) == record
    assert await q.count("bob", "d1") == 2


async def test_a_retry_within_the_limits_is_answered_from_the_ledger_and_counted(
    stores: Stores,
) -> None:
    q = stores.queues
    first = send_record("e1")
    assert await q.enqueue_send_limited(
        first, [envelope("e1")], stores.ratelimits, LIMITS, NOW) is None
    retry = send_record("r1", at=130.0)
    assert await q.enqueue_send_limited(
        retry, [envelope("r1")], stores.ratelimits, LIMITS, NOW) == first
    assert [e.delivery_id for e in await q.fetch("bob", "d1", 10)] == ["e1"]
    assert [await remaining(stores, hit) for hit in LIMITS] == [1, 0, 3]


async def test_a_taken_delivery_id_is_refused_after_the_limits_are_counted(
    stores: Stores,
) -> None:
    q = stores.queues
    await q.enqueue([envelope("taken")])
    with pytest.raises(AlreadyExists):
        await q.enqueue_send_limited(
            send_record("new", "taken"), [envelope("new"), envelope("taken", device="d2")],
            stores.ratelimits, LIMITS, NOW)
    assert await q.get_send(KEY) is None
    assert [e.delivery_id for e in await q.fetch("bob", "d1", 10)] == ["taken"]
    assert [await remaining(stores, hit) for hit in LIMITS] == [2, 1, 4]


async def test_without_limits_it_is_the_plain_send(stores: Stores) -> None:
    q = stores.queues
    record = send_record("e1")
    assert await q.enqueue_send_limited(record, [envelope("e1")], stores.ratelimits, (), NOW
                                        ) is None
    assert await q.get_send(KEY) == record
