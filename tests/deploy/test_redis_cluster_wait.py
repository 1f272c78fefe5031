"""``WAIT N`` on the relay's send (``RedisQueueStore(ns, wait=ReplicaWait(...))``, docs/backends.md
"Cluster shape"): a send is acknowledged only once a replica has it. On the Sentinel topology
of the cluster shape, real redis-server processes: a stalled replica turns acknowledgements
into :class:`ReplicaWaitError` refusals, and the lagging-replica failover that loses
acknowledged sends without WAIT loses none with it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from semafore.deploy.cluster import LocalClusterProvider
from semafore.deploy.failover import measure_failover
from semafore.deploy.selection import provider_from_settings
from semafore.deploy.settings import InfraSettings, ProviderKind, Shape
from semafore.deploy.testing import require
from semafore.storage.redis import (
    RedisNamespace,
    RedisQueueStore,
    ReplicaWait,
    ReplicaWaitError,
)
from tests.storage.factory_local_cluster import shared_cluster
from tests.storage.test_conformance import envelope, send_record


@pytest.mark.parametrize(("replicas", "timeout", "field"),
                         [(0, 1.0, "replicas"), (-1, 1.0, "replicas"), (1, 0.0, "timeout"),
                          (1, 61.0, "timeout")])
def test_a_bad_replica_wait_names_the_field(replicas: int, timeout: float, field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field}:"):
        ReplicaWait(replicas, timeout)


def test_waiting_on_the_replica_less_cluster_is_refused_up_front() -> None:
    ns = RedisNamespace(shared_cluster().address.url, "w")
    try:
        with pytest.raises(ValueError, match=r"^wait:"):
            RedisQueueStore(ns, wait=ReplicaWait(1))
    finally:
        asyncio.run(ns.close())


@pytest.fixture
def sentinel(tmp_path: Path) -> Iterator[LocalClusterProvider]:
    base = InfraSettings.from_env({})
    settings = InfraSettings(**{**base.__dict__, "provider": ProviderKind.LOCAL,
                                "shape": Shape.CLUSTER, "work_dir": tmp_path})
    provider = provider_from_settings(settings)
    assert isinstance(provider, LocalClusterProvider)

    def start() -> LocalClusterProvider:
        provider.start()
        return provider

    require(start)
    yield provider
    provider.stop()


@pytest.mark.backend
def test_a_send_is_acknowledged_only_once_a_replica_has_it(
    sentinel: LocalClusterProvider,
) -> None:
    """Replica up: acknowledged. Replica stalled: the same kind of send is refused with the
    count of replicas that confirmed (0), while a store without ``wait`` still acknowledges —
    so it is the WAIT that refuses. Replica back: the retry under the same key replays the
    recorded send, acknowledged now that the replica has it."""
    url = sentinel.endpoints.redis_url
    replica = sentinel.group().replica
    assert url is not None and replica is not None

    async def body() -> None:
        ns = RedisNamespace(url, f"w{uuid.uuid4().hex[:10]}")
        waiting = RedisQueueStore(ns, wait=ReplicaWait(1, timeout=0.3))
        plain = RedisQueueStore(ns)
        try:
            assert await waiting.enqueue_send(send_record("e1"), [envelope("e1")]) is None
            replica.process.pause()
            try:
                with pytest.raises(ReplicaWaitError) as refused:
                    await waiting.enqueue_send(send_record("e2", message_id="m2"),
                                               [envelope("e2")])
                assert (refused.value.wanted, refused.value.confirmed) == (1, 0)
                with pytest.raises(ReplicaWaitError):  # a replay waits too
                    await waiting.enqueue_send(send_record("r2", message_id="m2"),
                                               [envelope("r2")])
                assert await plain.enqueue_send(send_record("e3", message_id="m3"),
                                                [envelope("e3")]) is None
            finally:
                replica.process.resume()
            recorded = await waiting.enqueue_send(send_record("r3", message_id="m2"),
                                                  [envelope("r3")])
            assert recorded == send_record("e2", message_id="m2")
        finally:
            await ns.drop()
            await ns.close()

    asyncio.run(body())


@pytest.mark.backend
def test_with_wait_the_lagging_replica_failover_loses_no_acknowledged_send(
    sentinel: LocalClusterProvider,
) -> None:
    """The run ``test_a_lagging_replica_loses_acknowledged_sends_and_the_harness_counts_them``
    shows losing acknowledged sends, with ``wait``: writes during the stall are refused (not
    acknowledged), so the promoted replica lacks no acknowledged send; every send is
    acknowledged in the end (the killed primary rejoins as the new primary's replica)."""
    figures = asyncio.run(measure_failover(
        sentinel, messages=1200, writers=8, kill_after=1000, pause_replica_at=400,
        body_size=32 * 1024, wait=ReplicaWait(1, timeout=0.05), deadline=120.0,
    ))
    assert figures.acknowledged == 1200
    assert figures.error_kinds.get("ReplicaWaitError", 0) > 0, "the stall never refused a send"
    assert figures.lost == ()
    assert figures.duplicated == ()
