"""Redis queue store beyond the ports, on a real redis-server: reading envelopes by id for the
cross-replica push hub (``RedisQueueStore.get_envelopes``), the send with its rate limits in
one script (``enqueue_send_limited``: one round trip, also under ``WAIT``) and the ack with its
proofs (``ack_delivered``), each answering as the port's separate calls do."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from semafore.deploy.settings import ProviderKind
from semafore.deploy.testing import shared_provider
from semafore.storage.ports import (
    AlreadyExists,
    LimitRefused,
    QueueStore,
    RateHit,
    delivery_proof,
)
from semafore.storage.redis import (
    RedisNamespace,
    RedisQueueStore,
    RedisRateLimitStore,
    ReplicaWait,
    ReplicaWaitError,
)
from tests.storage.test_conformance import envelope, send_record

pytestmark = [pytest.mark.anyio, pytest.mark.backend]


@pytest.fixture
async def queues() -> AsyncIterator[RedisQueueStore]:
    url = shared_provider(ProviderKind.LOCAL).endpoints.redis_url
    assert url is not None
    ns = RedisNamespace(url, f"rq{uuid.uuid4().hex[:12]}")
    try:
        yield RedisQueueStore(ns)
    finally:
        await ns.drop()
        await ns.close()


async def test_get_envelopes_returns_only_still_queued_ones_by_id(
    queues: RedisQueueStore,
) -> None:
    stored = [envelope("e1"), envelope("e2", device="d2"), envelope("e3", user="carol")]
    await queues.enqueue(stored)
    await queues.ack("bob", "d2", ["e2"])
    found = await queues.get_envelopes(
        [("carol", "e3"), ("bob", "e2"), ("bob", "gone"), ("bob", "e1"), ("carol", "e3")]
    )
    assert found == {"e3": stored[2], "e1": stored[0]}
    assert await queues.get_envelopes([]) == {}


LIMITS: tuple[RateHit, ...] = (("send:account:alice", 1, 60.0), ("queue_sender:pair:x", 9, 60.0))
KEY = ("o1", "alice", "a1", "bob", "m1")


def trips(queues: RedisQueueStore) -> int:
    assert queues.ns.pipeline is not None, "one server: the adapters auto-pipeline"
    return queues.ns.pipeline.stats["pipelines"]


async def test_a_send_with_its_limits_is_one_round_trip(queues: RedisQueueStore) -> None:
    rates = RedisRateLimitStore(queues.ns)
    await queues.enqueue_send_limited(  # the first run loads the script
        send_record("e0", message_id="m0"), [envelope("e0")], rates, (), 120.0)
    before = trips(queues)
    assert await queues.enqueue_send_limited(
        send_record("e1"), [envelope("e1")], rates, LIMITS, 120.0) is None
    assert trips(queues) - before == 1
    before = trips(queues)
    with pytest.raises(LimitRefused):  # the send limit (1) now full: refused in that trip
        await queues.enqueue_send_limited(
            send_record("e2", message_id="m2"), [envelope("e2")], rates, LIMITS, 120.0)
    assert trips(queues) - before == 1
    assert await queues.count("bob", "d1") == 2


async def test_rate_limits_of_another_namespace_are_counted_there_in_their_own_call(
    queues: RedisQueueStore,
) -> None:
    url = shared_provider(ProviderKind.LOCAL).endpoints.redis_url
    assert url is not None
    other = RedisNamespace(url, f"rl{uuid.uuid4().hex[:12]}")
    try:
        rates = RedisRateLimitStore(other)
        assert await queues.enqueue_send_limited(
            send_record("e1"), [envelope("e1")], rates, LIMITS, 120.0) is None
        assert not (await rates.hit(*LIMITS[0], 121.0)).allowed  # counted in `other`
        assert (await RedisRateLimitStore(queues.ns).hit(*LIMITS[0], 121.0)).allowed
    finally:
        await other.drop()
        await other.close()


async def test_under_wait_a_refused_send_is_refused_not_left_unconfirmed(
    queues: RedisQueueStore,
) -> None:
    """``WAIT 1`` on a server without replicas confirms nothing: an accepted send is
    :class:`ReplicaWaitError` (written, not acknowledged), while a send its limits refused
    wrote nothing to confirm and is :class:`LimitRefused`."""
    waiting = RedisQueueStore(queues.ns, wait=ReplicaWait(1, timeout=0.05))
    rates = RedisRateLimitStore(queues.ns)
    with pytest.raises(ReplicaWaitError):
        await waiting.enqueue_send_limited(
            send_record("e1"), [envelope("e1")], rates, LIMITS, 120.0)
    assert await queues.get_send(KEY) is not None
    with pytest.raises(LimitRefused) as refused:
        await waiting.enqueue_send_limited(
            send_record("e2", message_id="m2"), [envelope("e2")], rates, LIMITS, 120.0)
    assert refused.value.index == 0
    assert await queues.get_send(("o1", "alice", "a1", "bob", "m2")) is None
    assert await queues.count("bob", "d1") == 1


Outcome = tuple[str, object]


async def _outcome(call: Any) -> Outcome:
    try:
        recorded = await call
    except LimitRefused as refused:
        return ("refused", (refused.index, refused.decision))
    except AlreadyExists:
        return ("taken", None)
    return ("recorded", recorded)


Send = tuple[str, str, float]  # message id, delivery id, now


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    limits=st.lists(st.tuples(st.integers(1, 3), st.sampled_from([10.0, 60.0])),
                    min_size=1, max_size=4),
    prefill=st.lists(st.integers(0, 3), min_size=4, max_size=4),
    sends=st.lists(st.tuples(st.sampled_from(["m1", "m2"]), st.sampled_from(["e1", "e2", "e3"]),
                             st.sampled_from([100.0, 105.0, 125.0])), min_size=1, max_size=5),
)
def test_the_one_script_send_answers_as_the_two_calls_would(
    limits: list[tuple[int, float]], prefill: list[int], sends: list[Send]
) -> None:
    """Differential: the same sends, on two namespaces, through the fused script and through
    the port's default (``hit_each``, then ``enqueue_send``), give the same answers (queued,
    the recorded send, refused at which counter with which Retry-After, a taken delivery id)
    and leave the same counters, ledger and queue."""
    url = shared_provider(ProviderKind.LOCAL).endpoints.redis_url
    assert url is not None
    hits: list[RateHit] = [(f"c{i}", limit, window) for i, (limit, window) in enumerate(limits)]

    async def run(fused: bool) -> tuple[list[Outcome], list[object]]:
        ns = RedisNamespace(url, f"df{uuid.uuid4().hex[:12]}")
        queues, rates = RedisQueueStore(ns), RedisRateLimitStore(ns)
        try:
            for (key, limit, window), count in zip(hits, prefill, strict=False):
                for _ in range(count):
                    await rates.hit(key, limit, window, 100.0)
            outcomes = []
            for message_id, delivery_id, now in sends:
                record = send_record(delivery_id, message_id=message_id, at=now)
                args = (record, [envelope(delivery_id, at=now)], rates, hits, now)
                call = (queues.enqueue_send_limited(*args) if fused
                        else QueueStore.enqueue_send_limited(queues, *args))
                outcomes.append(await _outcome(call))
            state: list[object] = [
                [(await rates.hit(key, 10**6, window, 125.0)).allowed for key, _, window in hits],
                [await ns.client.get(ns.rate(k, int(125.0 // w))) for k, _, w in hits],
                [e.delivery_id for e in await queues.fetch("bob", "d1", 10)],
                [await queues.get_send(("o1", "alice", "a1", "bob", m)) for m in ("m1", "m2")],
            ]
            return outcomes, state
        finally:
            await ns.drop()
            await ns.close()

    async def both() -> None:
        assert await run(True) == await run(False)

    asyncio.run(both())


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    queued=st.lists(st.tuples(st.sampled_from(["e1", "e2", "e3", "e4"]),
                              st.sampled_from(["o1", "o2"]), st.sampled_from(["d1", "d2"])),
                    max_size=4, unique_by=lambda t: t[0]),
    proven=st.sets(st.sampled_from(["e1", "e2", "e3", "e4"]), max_size=2),
    acks=st.lists(st.lists(st.sampled_from(["e1", "e2", "e3", "e4", "x"]), max_size=4),
                  min_size=1, max_size=3),
)
def test_the_one_script_ack_answers_as_ack_then_record_deliveries(
    queued: list[tuple[str, str, str]], proven: set[str], acks: list[list[str]]
) -> None:
    """Differential: the same acks of device d1 (org o1 acking; envelopes of o1 and o2, on
    d1 and d2, some proven before), through the one script and through the port's default
    (``ack``, then ``record_deliveries``), return the same envelopes and leave the same
    queues and proofs."""
    url = shared_provider(ProviderKind.LOCAL).endpoints.redis_url
    assert url is not None
    envelopes = [envelope(i, org=o, device=d) for i, o, d in queued]

    async def run(fused: bool) -> list[object]:
        ns = RedisNamespace(url, f"da{uuid.uuid4().hex[:12]}")
        queues = RedisQueueStore(ns)
        try:
            if envelopes:
                await queues.enqueue(envelopes)
            for e in envelopes:
                if e.delivery_id in proven:
                    await queues.record_delivery(delivery_proof(e, 1.0))
            answers: list[object] = []
            for n, ids in enumerate(acks):
                args = ("bob", "d1", "o1", ids, 500.0 + n)
                answers.append(await (queues.ack_delivered(*args) if fused
                                      else QueueStore.ack_delivered(queues, *args)))
            for device in ("d1", "d2"):
                answers.append(await queues.fetch("bob", device, 10))
            for org in ("o1", "o2"):
                answers.append(await queues.list_deliveries(org, None, 10))
                answers.append(await queues.expire(org, before=10**9))
            return answers
        finally:
            await ns.drop()
            await ns.close()

    async def both() -> None:
        assert await run(True) == await run(False)

    asyncio.run(both())
