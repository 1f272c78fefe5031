"""The Redis push hub against a real redis-server: two hubs on one namespace are what two
relay replicas hold. A wake-up published by one reaches a socket registered on the other,
presence names the replica holding a device, a removal disconnects everywhere, and a lost
subscription is re-established with every local device woken (docs/backends.md)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from semafore.deploy.redis_push import RedisPushHub
from semafore.deploy.settings import ProviderKind
from semafore.deploy.stores import BackendHandles, backend_stores
from semafore.deploy.testing import shared_provider
from semafore.server.push import REFILL, Connection, PushHub, PushPort
from semafore.storage.ports import QueuedEnvelope, QueueStore

pytestmark = [pytest.mark.backend, pytest.mark.anyio]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def hubs() -> AsyncIterator[list[RedisPushHub]]:
    endpoints = shared_provider(ProviderKind.LOCAL).endpoints
    namespace = f"h{uuid.uuid4().hex[:12]}"
    opened: list[BackendHandles] = []
    started: list[RedisPushHub] = []
    for name in ("replica-a", "replica-b"):
        stores, handles = await backend_stores(endpoints, namespace)
        opened.append(handles)
        QUEUES[name] = stores.queues
        hub = handles.push_hub(name, presence_ttl=3.0)
        hub.reconnect_delay = 0.05
        await hub.start()
        started.append(hub)
    yield started
    for hub in started:
        await hub.close()
    await opened[0].drop()
    for handles in opened:
        await handles.close()


QUEUES: dict[str, QueueStore] = {}


async def enqueue(hub: RedisPushHub, *envelopes: QueuedEnvelope) -> None:
    """What the relay does on a send: store first, then publish."""
    await QUEUES[hub.replica].enqueue(list(envelopes))
    hub.publish(envelopes)


def envelope(delivery_id: str, user: str = "bob", device: str = "d1") -> QueuedEnvelope:
    return QueuedEnvelope(
        delivery_id, "o1", f"m-{delivery_id}", "message", "alice", "a1", user, device,
        b"\x01ct", bytes(32), 1.0,
    )


async def next_item(conn: Connection, timeout: float = 10.0) -> object:
    return await asyncio.wait_for(conn.outbox.get(), timeout)


async def eventually(probe: object, want: object, timeout: float = 10.0) -> None:
    assert callable(probe)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (got := await probe()) != want:
        assert loop.time() < deadline, f"still {got!r}, want {want!r}"
        await asyncio.sleep(0.02)


def test_both_hubs_satisfy_the_port() -> None:
    def port(hub: PushPort) -> PushPort:
        return hub

    assert port(PushHub()) is not None
    assert issubclass(RedisPushHub, PushHub)


async def test_enqueue_on_one_replica_wakes_the_socket_on_the_other(
    hubs: list[RedisPushHub],
) -> None:
    a, b = hubs
    bob = Connection("bob", "d1")
    b.register(bob)
    await enqueue(a, envelope("e1"), envelope("e2"))  # bob is not connected to a
    got = [await next_item(bob), await next_item(bob)]  # b read them from the store
    assert [e.delivery_id for e in got if isinstance(e, QueuedEnvelope)] == ["e1", "e2"]
    assert b.stats["woken"] >= 1 and a.stats["published"] >= 1


async def test_local_recipient_gets_the_envelope_itself_and_no_wake_up_is_published(
    hubs: list[RedisPushHub],
) -> None:
    a, _ = hubs
    bob = Connection("bob", "d1")
    a.register(bob)
    env = envelope("e1")
    a.publish([env])
    assert await next_item(bob) is env
    await asyncio.sleep(0)
    assert a.stats["published"] == 0


async def test_a_burst_of_wake_ups_for_one_device_is_coalesced(hubs: list[RedisPushHub]) -> None:
    a, b = hubs
    bob = Connection("bob", "d1")
    b.register(bob)
    for i in range(50):
        await QUEUES["replica-a"].enqueue([envelope(f"e{i}")])
    for i in range(50):  # a burst: published before the hub's publisher task runs again
        a.publish([envelope(f"e{i}")])
    got = [await next_item(bob) for _ in range(50)]
    assert [e.delivery_id for e in got if isinstance(e, QueuedEnvelope)] == [
        f"e{i}" for i in range(50)
    ]
    assert a.stats["published"] < 50  # one PUBLISH carried many ids


async def test_presence_names_the_replica_holding_the_device(hubs: list[RedisPushHub]) -> None:
    a, b = hubs
    phone = Connection("bob", "d1")

    async def where() -> str | None:
        return await a.presence.where("bob", "d1")

    b.register(phone)
    await eventually(where, "replica-b")
    b.unregister(phone)
    await eventually(where, None)


async def test_presence_is_refreshed_while_connected_and_lapses_with_a_dead_replica(
    hubs: list[RedisPushHub],
) -> None:
    a, b = hubs
    b.register(Connection("bob", "d1"))

    async def where() -> str | None:
        return await a.presence.where("bob", "d1")

    await eventually(where, "replica-b")
    await asyncio.sleep(3.5)  # longer than the TTL: only the refresh keeps it
    assert await where() == "replica-b"
    await b.close()  # a replica that stops clears its own entries
    assert await where() is None


async def test_removing_a_device_closes_its_socket_on_every_replica(
    hubs: list[RedisPushHub],
) -> None:
    a, b = hubs
    bob = Connection("bob", "d1")
    b.register(bob)
    a.disconnect_device("bob", "d1")
    assert await next_item(bob) is None


async def test_other_devices_are_not_woken(hubs: list[RedisPushHub]) -> None:
    a, b = hubs
    tablet = Connection("bob", "tablet")
    carol = Connection("carol", "d1")
    b.register(tablet)
    b.register(carol)
    await QUEUES["replica-a"].enqueue([envelope("e1", "bob", "d1")])
    b.register(probe := Connection("bob", "d1"))  # a marker after the enqueue
    a.publish([envelope("e1", "bob", "d1")])
    item = await next_item(probe)
    assert isinstance(item, QueuedEnvelope) and item.delivery_id == "e1"
    assert tablet.outbox.empty() and carol.outbox.empty()


async def test_a_lost_subscription_is_restored_and_local_devices_woken(
    hubs: list[RedisPushHub],
) -> None:
    a, b = hubs
    bob = Connection("bob", "d1")
    b.register(bob)
    client = b.push.ns.client
    killed = await client.execute_command("CLIENT", "KILL", "TYPE", "pubsub")  # type: ignore[no-untyped-call]
    assert int(killed) >= 1
    assert await next_item(bob) == REFILL  # woken on resubscribe: wake-ups may have been lost

    async def resubscribed() -> bool:
        return b.stats["resubscribed"] >= 1 and b.subscribed.is_set()

    await eventually(resubscribed, True)
    while not bob.outbox.empty():
        bob.outbox.get_nowait()
    await enqueue(a, envelope("e1"))
    item = await next_item(bob)
    assert isinstance(item, QueuedEnvelope) and item.delivery_id == "e1"


async def test_a_wake_up_for_an_envelope_acked_meanwhile_pushes_nothing(
    hubs: list[RedisPushHub],
) -> None:
    _, b = hubs
    bob = Connection("bob", "d1")
    b.register(bob)
    await QUEUES["replica-a"].enqueue([envelope("e1"), envelope("e2")])
    await QUEUES["replica-b"].ack("bob", "d1", ["e1"])  # e.g. fetched over HTTP and acked
    await b._deliver({("bob", "d1"): ["e1", "e2"]})  # the wake-up arrives late
    item = await next_item(bob)
    assert isinstance(item, QueuedEnvelope) and item.delivery_id == "e2"
    assert bob.outbox.empty()  # reading by id never resurrects the acked e1
