"""Conformance: ``QueueStore.pipelines_sends``. The relay starts a socket's next send before the
previous one answered only on an adapter that claims it (``semafore.server.send_order``,
issue #16 item 4), so the claim must hold: a burst of sends started back to back, each one's
first step run before the next one's, is queued in the order started. Every adapter runs this:
one that claims it gets the burst the way the relay starts it, one that does not gets its
sends one at a time, as the relay then awaits them. On Redis the burst is also sent right after
the server lost its scripts (``SCRIPT FLUSH``, as after a restart): the reloads keep the order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import pytest

from semafore.storage.memory import MemoryQueueStore, memory_stores
from semafore.storage.ports import (
    QueuedEnvelope,
    QueueStore,
    RateHit,
    RateLimitStore,
    SendRecord,
    Stores,
)
from semafore.storage.redis import RedisQueueStore
from tests.storage.test_conformance import envelope, send_record

pytestmark = pytest.mark.anyio

NOW = 125.0
HITS: Sequence[RateHit] = (("send:account:alice", 1000, 60.0),)
BURST = 40


async def queued_in_order_started(
    stores: Stores, queues: QueueStore, count: int = BURST
) -> list[str]:
    """Start ``count`` sends of alice's device a1 to bob's d1 as the relay would (back to back
    where ``queues`` claims ``pipelines_sends``, else one at a time); bob's queue, by message."""
    calls = [
        queues.enqueue_send_limited(
            send_record(f"e{n}", message_id=f"m{n}"), [envelope(f"e{n}")], stores.ratelimits,
            HITS, NOW,
        )
        for n in range(count)
    ]
    if queues.pipelines_sends:  # as frames arrive: a few per loop turn, so several batches fly
        started = []
        for n, call in enumerate(calls):
            started.append(asyncio.ensure_future(call))  # first steps run in this order
            if n % 3 == 2:
                await asyncio.sleep(0)
        outcomes = await asyncio.gather(*started)
    else:
        outcomes = [await call for call in calls]
    assert outcomes == [None] * count
    return [e.message_id for e in await stores.queues.fetch("bob", "d1", count + 1)]


async def test_sends_are_queued_in_the_order_the_relay_starts_them(stores: Stores) -> None:
    queues = stores.queues
    if isinstance(queues, RedisQueueStore):  # one server or Sentinel: pipelined; Cluster: not
        assert queues.pipelines_sends is not queues.ns.cluster
    assert await queued_in_order_started(stores, stores.queues) == [f"m-e{n}" for n in range(BURST)]


async def test_the_order_holds_when_redis_lost_its_scripts(stores: Stores) -> None:
    """A server that lost its scripts answers NOSCRIPT to every send of the burst; each
    reload and re-run must keep the burst's order (on other adapters: the plain burst)."""
    queues = stores.queues
    if isinstance(queues, RedisQueueStore):
        await queues.ns.client.script_flush()
    assert await queued_in_order_started(stores, queues) == [f"m-e{n}" for n in range(BURST)]


class RoundTripQueues(MemoryQueueStore):
    """The in-memory queue store as a store with a round trip that claims ``pipelines_sends``:
    a send waits ``before(n)`` seconds (``n``: its call's number, from 1) before it takes
    effect and ``after`` seconds after. A right claim has ``before`` 0: the send takes effect
    in its first step, in the order started, as Redis's pipelined script does. ``started``
    lists message ids in the order they took effect."""

    def __init__(self, after: float = 0.0, before: Callable[[int], float] = lambda n: 0.0) -> None:
        super().__init__()
        self.after, self.before = after, before
        self.calls = 0
        self.started: list[str] = []

    @property
    def pipelines_sends(self) -> bool:
        return True

    async def enqueue_send_limited(
        self, record: SendRecord, envelopes: Sequence[QueuedEnvelope],
        ratelimits: RateLimitStore, hits: Sequence[RateHit], now: float,
    ) -> SendRecord | None:
        self.calls += 1
        if wait := self.before(self.calls):
            await asyncio.sleep(wait)
        self.started.append(record.message_id)
        outcome = await super().enqueue_send_limited(record, envelopes, ratelimits, hits, now)
        if self.after:
            await asyncio.sleep(self.after)
        return outcome


async def test_the_check_fails_for_an_adapter_whose_claim_is_wrong() -> None:
    stores = memory_stores()
    wrong = RoundTripQueues(before=lambda n: 0.001 * (BURST - n))  # the earlier, the longer
    stores.queues = wrong
    order = await queued_in_order_started(stores, wrong)
    assert sorted(order) == sorted(f"m-e{n}" for n in range(BURST))
    assert order != [f"m-e{n}" for n in range(BURST)]


def test_which_adapters_claim_it() -> None:
    """The in-memory store answers in its first step: nothing to overlap."""
    assert memory_stores().queues.pipelines_sends is False
