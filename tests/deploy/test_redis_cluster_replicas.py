"""The Redis Cluster with replicas (issue #16 item 5, docs/backends.md "Cluster shape"): three
primaries and a replica each, formed with ``CLUSTER REPLICATE``; when a primary is killed the
cluster's own failover promotes its replica, the relay's queue store keeps working on the
same ``redis+cluster://`` URL, and the killed node rejoins as a replica. Real ``redis-server``
processes; a missing binary fails in CI, never skips."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import redis
from hypothesis import given
from hypothesis import strategies as st

from semafore.deploy.cluster import LocalClusterProvider
from semafore.deploy.errors import BackendUnavailableError
from semafore.deploy.failover import RECIPIENT, measure_failover
from semafore.deploy.health import local_redis
from semafore.deploy.redis_cluster import (
    REPLICAS,
    RedisClusterGroup,
    cluster_info,
    node_view,
    parse_myself,
    slot_ranges,
)
from semafore.deploy.settings import InfraSettings, ProviderKind, RedisTopology, Shape
from semafore.deploy.testing import redis_server_binary, require
from semafore.storage.redis import RedisNamespace, RedisQueueStore
from semafore.storage.redis_cluster import SLOTS, slot_of
from tests.storage.test_conformance import envelope

# --- what a node says of itself -------------------------------------------------------------

_ranges = st.lists(st.tuples(st.integers(0, SLOTS - 1), st.integers(0, 40)), max_size=4)


@given(_ranges, st.integers(0, 99), st.booleans(), st.integers(0, SLOTS - 1))
def test_a_node_serves_exactly_the_slots_of_its_own_line(
    ranges: list[tuple[int, int]], epoch: int, primary: bool, slot: int,
) -> None:
    spans = [(low, min(low + width, SLOTS - 1)) for low, width in ranges]
    slots = " ".join(f"{a}-{b}" if a != b else str(a) for a, b in spans)
    role = "master" if primary else "slave"
    text = (f"aaa 127.0.0.1:7001@17001 {role} - 0 0 {epoch + 1} connected 0-16383\n"
            f"bbb 127.0.0.1:7000@17000 myself,{role} - 0 0 {epoch} connected {slots} "
            f"[{slot}->-ccc]\n")
    view = parse_myself(text)
    assert view is not None and (view.node_id, view.primary, view.epoch) == ("bbb", primary,
                                                                            epoch)
    # a slot being migrated away ([slot->-id]) is not counted as served
    assert view.serves(slot) == (primary and any(a <= slot <= b for a, b in spans))
    assert parse_myself(text.replace("myself,", "")) is None


# --- a running cluster with replicas --------------------------------------------------------


def _replication(port: int) -> dict[str, object]:
    with local_redis(port) as client:
        return dict(client.info("replication"))


def test_each_primary_gets_one_replica_in_sync(tmp_path: Path) -> None:
    with RedisClusterGroup(redis_server_binary(), tmp_path, replicas=1) as group:
        assert len(group.nodes) == 3 and len(group.replicas) == 3
        assert len(group.address.nodes) == 6  # every node is a seed
        for primary, (low, high) in zip(group.nodes, slot_ranges(), strict=True):
            assert group.serving(low) is primary and group.serving(high) is primary
        for replica in group.replicas:
            info = _replication(replica.port)
            assert info["role"] == "slave" and info["master_link_status"] == "up"
            assert info["master_port"] == replica.replica_of
            assert not node_view(replica.port).primary
        known = cluster_info(group.nodes[0].port)
        assert (known["cluster_known_nodes"], known["cluster_size"]) == ("6", "3")


def test_a_killed_primary_is_replaced_by_its_replica_and_rejoins_as_one(
    tmp_path: Path,
) -> None:
    """Kill -9 the primary of bob's slot: the replica formed for it serves the slot, what was
    queued (and replicated) before the kill is still there, a send after it succeeds through
    the same URL, and the killed node, started again, is the new primary's replica."""
    with RedisClusterGroup(redis_server_binary(), tmp_path, replicas=1) as group:
        store = RedisQueueStore(RedisNamespace(group.address.url, "f"))
        slot = slot_of(store.ns.user("bob"))
        former = group.serving(slot)
        [standby] = [r for r in group.replicas if r.replica_of == former.port]
        assert group.replicas_of(former.port) == [standby]

        async def before() -> None:
            await store.enqueue([envelope("before")])
            with local_redis(former.port) as client:  # replicated before the kill
                assert client.execute_command("WAIT", 1, 10_000) == 1

        async def after() -> list[str]:
            for _ in range(60):  # the client's own retries may end inside the window
                try:
                    await asyncio.wait_for(store.enqueue([envelope("after")]), timeout=30)
                    break
                except redis.RedisError:
                    await asyncio.sleep(0.5)
            return [e.delivery_id for e in await store.fetch("bob", "d1", 10)]

        async def body() -> list[str]:
            try:
                await before()
                assert former.process.kill()["killed"] == 1
                promoted = await asyncio.to_thread(group.wait_served, slot, former.port)
                assert promoted is standby
                return await after()
            finally:
                await store.ns.close()

        assert asyncio.run(body()) == ["before", "after"]
        assert not group.healthy()  # a node is gone: not whole
        assert group.start()["started"] == 1
        assert group.healthy() and group.serving(slot) is standby
        assert _replication(former.port)["master_port"] == standby.port
        assert group.replicas_of(standby.port) == [former]


def test_without_replicas_no_node_serves_a_killed_nodes_slot(tmp_path: Path) -> None:
    with RedisClusterGroup(redis_server_binary(), tmp_path) as group:
        slot = group.nodes[1].slots[0]
        group.nodes[1].process.kill()
        with pytest.raises(BackendUnavailableError, match=f"slot {slot}"):
            group.serving(slot)
        with pytest.raises(BackendUnavailableError, match="no failover"):
            group.wait_served(slot, group.nodes[1].port, timeout=0.5)


@pytest.mark.parametrize(("nodes", "replicas", "field"), [(0, 0, "nodes"), (3, -1, "replicas")])
def test_a_bad_layout_names_the_argument(nodes: int, replicas: int, field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field}:"):
        RedisClusterGroup(Path("redis-server"), Path("."), nodes=nodes, replicas=replicas)


@pytest.mark.backend
def test_a_lagging_replica_of_the_cluster_loses_acknowledged_sends_and_they_are_counted(
    tmp_path: Path,
) -> None:
    """The cluster's replication is asynchronous too: the replica of the node serving the
    recipient's slot is stopped for the last 600 acknowledgements before that node is killed
    (32 KiB bodies, ~19 MiB: more than the kernel's socket buffers hold), the cluster promotes
    the replica anyway and it lacks acknowledged sends, which ``measure_failover`` counts. A
    harness that could not see a loss would always report zero (docs/backends.md)."""
    settings = InfraSettings(provider=ProviderKind.LOCAL, shape=Shape.CLUSTER,
                             redis_topology=RedisTopology.CLUSTER, work_dir=tmp_path)
    provider = LocalClusterProvider(settings)

    def start() -> LocalClusterProvider:
        provider.start()
        return provider

    require(start)
    try:
        group = provider.redis_cluster
        assert group is not None and len(group.replicas) == 3 * REPLICAS
        ns = RedisNamespace(group.address.url, "failover")
        slot = slot_of(ns.user(RECIPIENT[0]))
        asyncio.run(ns.close())
        victim = group.serving(slot)
        [standby] = group.replicas_of(victim.port)
        figures = asyncio.run(measure_failover(
            provider, messages=1200, writers=8, kill_after=1000, pause_replica_at=400,
            body_size=32 * 1024,
        ))
        assert (figures.former_primary, figures.new_primary) == (victim.port, standby.port)
        assert not victim.process.alive and group.serving(slot) is standby
        assert figures.acknowledged == 1200
        assert figures.lost, "acknowledged sends written only to the killed node went unseen"
        assert set(figures.lost) <= {f"m{i:06d}" for i in range(1200)}
    finally:
        provider.stop()
