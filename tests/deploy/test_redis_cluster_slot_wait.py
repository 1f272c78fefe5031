"""``WAIT N`` on a Redis Cluster (``RedisQueueStore(ns, wait=ReplicaWait(...))`` on a
``redis+cluster://`` URL, docs/backends.md "Cluster shape"): a send is acknowledged only once
the replicas of every slot it wrote have it — WAIT runs on each slot's node. Real
``redis-server`` processes (three primaries, a replica each, ``RedisClusterGroup``); the
Sentinel counterpart is tests/deploy/test_redis_cluster_wait.py."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from semafore.deploy.cluster import LocalClusterProvider
from semafore.deploy.failover import RECIPIENT, measure_failover
from semafore.deploy.redis_cluster import ClusterNodeProcess, RedisClusterGroup
from semafore.deploy.settings import InfraSettings, ProviderKind, RedisTopology, Shape
from semafore.deploy.stores import backend_stores
from semafore.deploy.testing import redis_server_binary, require
from semafore.storage.ports import NotDurable
from semafore.storage.redis import (
    RedisNamespace,
    RedisQueueStore,
    ReplicaWait,
    ReplicaWaitError,
)
from semafore.storage.redis_cluster import slot_of
from tests.deploy.wait_checks import acknowledged_only_once_a_replica_has_it
from tests.storage.factory_local_cluster import shared_cluster
from tests.storage.test_conformance import envelope, send_record


def test_on_a_cluster_without_replicas_no_send_is_acknowledged() -> None:
    """The sharding-only cluster (``replicas=0``) can never confirm a copy: every send is
    refused with 0 confirmed, and the retry replays the recorded send, refused the same way."""

    async def body() -> None:
        ns = RedisNamespace(shared_cluster().address.url, f"w{uuid.uuid4().hex[:10]}")
        store = RedisQueueStore(ns, wait=ReplicaWait(1, timeout=0.05))
        try:
            for attempt in ("e1", "r1"):
                with pytest.raises(ReplicaWaitError) as refused:
                    await store.enqueue_send(send_record(attempt), [envelope(attempt)])
                assert (refused.value.wanted, refused.value.confirmed) == (1, 0)
            assert [e.delivery_id for e in await store.fetch("bob", "d1", 10)] == ["e1"]
        finally:
            await ns.drop()
            await ns.close()

    asyncio.run(body())


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterGroup]:
    root = tmp_path_factory.mktemp("wait")
    with RedisClusterGroup(redis_server_binary(), root, replicas=1) as group:
        yield group


def _replica_of_slot(group: RedisClusterGroup, key: str) -> ClusterNodeProcess:
    [replica] = group.replicas_of(group.serving(slot_of(key)).port)
    return replica


def _user_on_another_node(group: RedisClusterGroup, ns: RedisNamespace, *avoid: str) -> str:
    """A user whose slot is served by none of the nodes serving ``avoid``'s keys."""
    taken = {group.serving(slot_of(k)).port for k in avoid}
    return next(u for u in (f"carol{i}" for i in range(1000))
                if group.serving(slot_of(ns.user(u))).port not in taken)


@pytest.mark.backend
def test_a_send_is_acknowledged_only_once_its_slots_replica_has_it(
    cluster: RedisClusterGroup,
) -> None:
    """Replica of bob's slot up: acknowledged. Stalled: the same kind of send is refused with
    0 confirmed, while a store without ``wait`` still acknowledges — so it is the WAIT on
    that slot's node that refuses. Replica back: the retry under the same key replays the
    recorded send, acknowledged now that the replica has it."""

    asyncio.run(acknowledged_only_once_a_replica_has_it(
        cluster.address.url, lambda ns: _replica_of_slot(cluster, ns.user("bob")).process))


@pytest.mark.backend
def test_a_send_to_several_users_waits_for_every_slot_it_wrote(
    cluster: RedisClusterGroup,
) -> None:
    """A broadcast writes per slot (each recipient's envelopes, then the entry): with only
    the replica of a recipient whose slot is on neither the entry's nor the org's node
    stalled, the send is still refused — every slot's write must be confirmed — and so is
    its replay; resumed, the replay is acknowledged."""

    async def body() -> None:
        ns = RedisNamespace(cluster.address.url, f"w{uuid.uuid4().hex[:10]}")
        waiting = RedisQueueStore(ns, wait=ReplicaWait(1, timeout=0.3))
        patient = RedisQueueStore(ns, wait=ReplicaWait(1, timeout=10.0))
        far = _user_on_another_node(cluster, ns, ns.user("*"), ns.org("o1"))
        sends = [envelope("b1"), envelope("c1", user=far)]
        record = replace(send_record(recipient="*", message_id="mb"),
                         deliveries=(("bob", "d1", "b1"), (far, "d1", "c1")))
        replica = _replica_of_slot(cluster, ns.user(far))
        try:
            replica.process.pause()
            try:
                with pytest.raises(ReplicaWaitError):
                    await waiting.enqueue_send(record, sends)
                with pytest.raises(ReplicaWaitError):
                    await waiting.enqueue_send(record, sends)
            finally:
                replica.process.resume()
            assert await patient.enqueue_send(record, sends) == record
            assert [e.delivery_id for e in await patient.fetch(far, "d1", 10)] == ["c1"]
        finally:
            await ns.drop()
            await ns.close()

    asyncio.run(body())


@pytest.fixture
def provider(tmp_path: Path) -> Iterator[LocalClusterProvider]:
    settings = InfraSettings(provider=ProviderKind.LOCAL, shape=Shape.CLUSTER,
                             redis_topology=RedisTopology.CLUSTER, work_dir=tmp_path)
    provider = LocalClusterProvider(settings)

    def start() -> LocalClusterProvider:
        provider.start()
        return provider

    require(start)
    yield provider
    provider.stop()


@pytest.mark.backend
def test_the_relays_stores_wait_on_a_cluster_url(provider: LocalClusterProvider) -> None:
    """``SEMAFORE_REDIS_WAIT`` with a ``redis+cluster://`` URL reaches the relay's queue
    port (``backend_stores``): a send while the slot's replica is stopped raises
    :class:`NotDurable` (the relay's 503); the same endpoints without it acknowledge."""
    group = provider.redis_cluster
    assert group is not None
    waiting = replace(provider.endpoints, redis_wait=ReplicaWait(1, timeout=0.3))

    async def body() -> None:
        namespace = f"w{uuid.uuid4().hex[:10]}"
        stores, handles = await backend_stores(waiting, namespace)
        plain, plain_handles = await backend_stores(replace(waiting, redis_wait=None),
                                                    namespace)
        replica = _replica_of_slot(group, handles.redis.user("bob"))
        try:
            assert isinstance(stores.queues, RedisQueueStore) and stores.queues.wait is not None
            replica.process.pause()
            try:
                with pytest.raises(NotDurable):
                    await stores.queues.enqueue_send(send_record("e1"), [envelope("e1")])
                assert await plain.queues.enqueue_send(
                    send_record("e2", message_id="m2"), [envelope("e2")]) is None
            finally:
                replica.process.resume()
        finally:
            await handles.drop()
            await handles.close()
            await plain_handles.close()

    asyncio.run(body())


@pytest.mark.backend
def test_with_wait_the_lagging_replica_cluster_failover_loses_no_acknowledged_send(
    provider: LocalClusterProvider,
) -> None:
    """The run of ``test_a_lagging_replica_of_the_cluster_loses_acknowledged_sends_and_they_
    are_counted`` (tests/deploy/test_redis_cluster_replicas.py: the replica of the recipient's
    slot stalled for the last 600 acknowledgements, its primary killed, the replica promoted),
    with ``wait``: writes during the stall are refused, not acknowledged, so the promoted
    replica lacks no acknowledged send; every send is acknowledged in the end."""
    group = provider.redis_cluster
    assert group is not None
    ns = RedisNamespace(group.address.url, "failover")
    victim = group.serving(slot_of(ns.user(RECIPIENT[0])))
    asyncio.run(ns.close())
    [standby] = group.replicas_of(victim.port)
    figures = asyncio.run(measure_failover(
        provider, messages=1200, writers=8, kill_after=1000, pause_replica_at=400,
        body_size=32 * 1024, wait=ReplicaWait(1, timeout=0.05), deadline=120.0,
    ))
    assert (figures.former_primary, figures.new_primary) == (victim.port, standby.port)
    assert figures.acknowledged == 1200
    assert figures.error_kinds.get("ReplicaWaitError", 0) > 0, "the stall never refused a send"
    assert figures.lost == ()
    assert figures.duplicated == ()
