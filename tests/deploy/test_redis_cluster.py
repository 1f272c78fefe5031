"""The Redis Cluster topology of the cluster shape (issue #16 item 5, docs/backends.md "Cluster
shape"): the ``redis+cluster://`` URL, the 3-node group, hash tags that keep each script on
one slot, a relay delivering end to end on the cluster, and a lost node surfacing as a typed
error. Real ``redis-server`` processes; a missing binary fails in CI, never skips."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import given
from hypothesis import strategies as st
from redis.cluster import RedisCluster
from redis.exceptions import RedisError

from semafore.deploy import health
from semafore.deploy.cluster import LocalClusterProvider
from semafore.deploy.errors import FaultError, SettingsError
from semafore.deploy.processes import free_ports
from semafore.deploy.redis_cluster import RedisClusterGroup, cluster_info, slot_ranges
from semafore.deploy.selection import provider_from_settings
from semafore.deploy.settings import InfraSettings, ProviderKind, RedisTopology
from semafore.deploy.stores import backend_stores
from semafore.deploy.testing import redis_server_binary, require, shared_provider
from semafore.storage.ports import SendRecord
from semafore.storage.redis import (
    _ENQUEUE_SEND,
    RedisNamespace,
    RedisQueueStore,
    _tag,
)
from semafore.storage.redis_cluster import (
    SLOTS,
    ClusterAddress,
    is_cluster_url,
    node_urls,
    parse_cluster_url,
    slot_of,
)
from semafore.storage.redis_url import RedisUrlError
from tests.backends.test_cross_replica import pushed
from tests.backends.test_replicas import _ProxiedProvider, bodies, cluster
from tests.storage.factory_local_cluster import cluster_endpoints, shared_cluster
from tests.storage.test_conformance import envelope

# --- the URL and the setting ----------------------------------------------------------------


@given(st.lists(st.tuples(st.sampled_from(["127.0.0.1", "cache", "::1"]),
                          st.integers(1, 65535)), min_size=1, max_size=4))
def test_a_cluster_address_survives_its_url(nodes: list[tuple[str, int]]) -> None:
    address = ClusterAddress(tuple(nodes))
    assert parse_cluster_url(address.url) == address


def test_the_path_may_be_empty() -> None:
    assert parse_cluster_url("redis+cluster://127.0.0.1:7000") == ClusterAddress(
        (("127.0.0.1", 7000),))


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("redis://127.0.0.1:1/0", "scheme"),
        ("redis+cluster://127.0.0.1/0", "nodes"),
        ("redis+cluster://127.0.0.1:1,:2/0", "nodes"),
        ("redis+cluster://127.0.0.1:0", "nodes"),
        ("redis+cluster://user:pw@127.0.0.1:1", "nodes"),
        ("redis+cluster://127.0.0.1:1/3", "db"),
        ("redis+cluster://127.0.0.1:1/0/x", "db"),
    ],
)
def test_a_bad_cluster_url_names_the_part(url: str, field: str) -> None:
    with pytest.raises(RedisUrlError) as caught:
        parse_cluster_url(url)
    assert caught.value.field == field
    if field != "scheme":
        with pytest.raises(SettingsError) as setting:
            InfraSettings.from_env({"SEMAFORE_REDIS_URL": url})
        assert setting.value.field == "SEMAFORE_REDIS_URL"
        assert field in setting.value.reason


def test_the_redis_setting_accepts_the_cluster_form() -> None:
    url = "redis+cluster://127.0.0.1:7000,127.0.0.1:7001/0"
    assert InfraSettings.from_env({"SEMAFORE_REDIS_URL": url}).redis_url == url


def test_the_topology_defaults_to_sentinel_and_a_bad_one_names_the_variable() -> None:
    assert InfraSettings.from_env({}).redis_topology is RedisTopology.SENTINEL
    chosen = InfraSettings.from_env({"SEMAFORE_REDIS_TOPOLOGY": " Cluster "})
    assert chosen.redis_topology is RedisTopology.CLUSTER
    with pytest.raises(SettingsError) as caught:
        InfraSettings.from_env({"SEMAFORE_REDIS_TOPOLOGY": "shards"})
    assert caught.value.field == "SEMAFORE_REDIS_TOPOLOGY"


@given(st.integers(1, 64))
def test_slot_ranges_cover_every_slot_exactly_once(nodes: int) -> None:
    ranges = slot_ranges(nodes)
    assert len(ranges) == nodes
    assert ranges[0][0] == 0 and ranges[-1][1] == SLOTS - 1
    assert all(a[1] + 1 == b[0] for a, b in itertools.pairwise(ranges))
    assert all(low <= high for low, high in ranges)


# --- hash tags ------------------------------------------------------------------------------

ids = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=12)


@given(ids, ids)
def test_tags_are_injective_and_close_where_they_should(one: str, two: str) -> None:
    """Escaping keeps a ``}`` in an id from ending the tag early (which would put two users
    sharing a prefix into one slot's reasoning but not another's) and two ids apart."""
    assert (_tag("u", one) == _tag("u", two)) == (one == two)
    tag = _tag("u", one)
    assert tag.index("}") == len(tag) - 1


def _store(url: str = "redis+cluster://127.0.0.1:1/0") -> RedisQueueStore:
    return RedisQueueStore(RedisNamespace(url, "p"))


@given(ids, st.lists(st.tuples(ids, ids), min_size=1, max_size=5, unique_by=lambda t: t[1]))
def test_a_send_to_one_user_is_one_slot(user: str, deliveries: list[tuple[str, str]]) -> None:
    """Every key the relay's send script touches — ledger entry and, per envelope, the hash,
    device queue, sequence and org index — hashes to the recipient's slot: one script."""
    store = _store()
    envelopes = [envelope(i, user=user, device=d) for d, i in deliveries]
    keys, _ = store._envelope_args(envelopes)
    ledger = store._ledger(("o1", "alice", "a1", user, "m1"))
    assert {slot_of(k) for k in [ledger, *keys]} == {slot_of(ledger)}
    assert len(store.ns.by_slot(envelopes, lambda e: store.ns.user(e.recipient_user_id))) == 1


# --- on a running cluster -------------------------------------------------------------------


def _record(user: str, *delivery_ids: str) -> SendRecord:
    return SendRecord("o1", "alice", "a1", user, "m1", b"\x11" * 32,
                      tuple((user, "d1", i) for i in delivery_ids), 100.0, 3700.0)


def _eval_on_owner(group: RedisClusterGroup, keys: list[str], args: list[Any]) -> Any:
    """EVAL the send script on the node owning the first key, as a Cluster client would
    route it, so the answer is the server's own (not redis-py's client-side check)."""
    owner = group.node_of_slot(slot_of(keys[0]))
    with redis.Redis(host="127.0.0.1", port=owner.port, socket_timeout=5) as client:
        return client.eval(_ENQUEUE_SEND, len(keys), *keys, *args)


def test_the_send_script_runs_on_the_cluster_only_because_of_its_hash_tags() -> None:
    group = shared_cluster()
    store = _store(group.address.url)
    user = f"bob-{uuid.uuid4().hex[:8]}"
    envelopes = [envelope("x1", user=user), envelope("x2", user=user, device="d2")]
    record = _record(user, "x1", "x2")
    keys, args = store._envelope_args(envelopes)
    ledger = store._ledger(record.key)
    argv = [60_000, "{}", "send", "100.0", 0, len(envelopes), 0, *args]
    untagged = [k.replace("{", "").replace("}", "") for k in [ledger, *keys]]
    assert len({slot_of(k) for k in untagged}) > 1
    with pytest.raises(redis.ResponseError, match="same slot"):  # the server's CROSSSLOT
        _eval_on_owner(group, untagged, argv)
    assert _eval_on_owner(group, [ledger, *keys], argv) == [1]
    with redis.Redis(host="127.0.0.1", port=group.node_of_slot(slot_of(ledger)).port) as c:
        c.delete(ledger, *keys)


def test_the_group_is_three_primaries_sharing_every_slot() -> None:
    group = shared_cluster()
    assert len(group.nodes) == 3
    for node in group.nodes:
        info = cluster_info(node.port)
        assert info["cluster_state"] == "ok"
        assert int(info["cluster_known_nodes"]) == 3
        assert int(info["cluster_slots_assigned"]) == SLOTS


def test_node_urls_name_every_primary_so_a_raw_reader_sees_every_key() -> None:
    """SCAN on one node sees only its slots: a dump must visit each URL ``node_urls`` gives,
    and together they see every key, while no single node does."""
    group = shared_cluster()
    urls = node_urls(group.address.url)
    assert urls == sorted(f"redis://127.0.0.1:{n.port}/0" for n in group.nodes)
    prefix = f"n{uuid.uuid4().hex[:8]}"
    keys = {f"{prefix}:{{{n}}}".encode() for n in range(30)}
    seed = group.nodes[0]
    with RedisCluster(host="127.0.0.1", port=seed.port) as writer:
        for key in keys:
            writer.set(key, b"x")
        try:
            per_node = []
            for url in urls:
                with redis.Redis.from_url(url) as client:
                    per_node.append(set(client.scan_iter(match=f"{prefix}:*")))
            assert set().union(*per_node) == keys
            assert all(seen < keys for seen in per_node)
        finally:
            for key in keys:
                writer.delete(key)


def test_a_broadcast_spanning_slots_is_recorded_once_and_a_refused_one_leaves_nothing() -> None:
    """The per-slot path (several users' envelopes, then the ledger entry): a retry replays
    the first send, and a send refused for a taken id leaves no envelope of its other users."""

    async def body() -> None:
        store = _store(shared_cluster().address.url)
        store.ns.prefix = f"b{uuid.uuid4().hex[:10]}"
        users = ["bob", "carol", "dave", "erin"]
        assert len({slot_of(store.ns.user(u)) for u in users}) > 1
        first = [envelope(f"b-{u}", user=u) for u in users]
        record = SendRecord("o1", "alice", "a1", "*", "m1", b"\x11" * 32,
                            tuple((u, "d1", f"b-{u}") for u in users), 100.0, 3700.0)
        try:
            assert await store.enqueue_send(record, first) is None
            retry = [envelope(f"r-{u}", user=u) for u in users]
            assert await store.enqueue_send(record, retry) == record
            for u in users:
                assert [e.delivery_id for e in await store.fetch(u, "d1", 10)] == [f"b-{u}"]
            other = SendRecord("o1", "alice", "a1", "*", "m2", b"\x22" * 32, (), 100.0, 3700.0)
            taken = [envelope("n-bob", user="bob"), envelope("b-carol", user="carol")]
            with pytest.raises(Exception, match="delivery_id"):
                await store.enqueue_send(other, taken)
            assert [e.delivery_id for e in await store.fetch("bob", "d1", 10)] == ["b-bob"]
            assert await store.get_send(other.key) is None
        finally:
            await store.ns.drop()
            await store.ns.close()

    asyncio.run(body())


@pytest.mark.backend
def test_a_relay_on_the_redis_cluster_delivers_end_to_end(tmp_path: Path) -> None:
    """Two relay processes on MongoDB, SeaweedFS and a 3-node Redis Cluster: messages sent
    through one reach a device polling the other, both ways, and the envelopes lived in the
    cluster (the namespace's keys are spread over its nodes)."""
    endpoints = cluster_endpoints()
    namespace = f"rc{uuid.uuid4().hex[:10]}"

    async def body() -> None:
        on_cluster = _ProxiedProvider(shared_provider(ProviderKind.LOCAL), endpoints)
        async with cluster(on_cluster, tmp_path, namespace) as c:
            alice = await c.device("alice", 0)
            bob = await c.device("bob", 1)
            await alice.send_text("bob", b"over the cluster")
            await alice.send_text("bob", b"in order")
            assert bodies(await bob.poll()) == [b"over the cluster", b"in order"]
            await bob.send_text("alice", b"and back")
            assert bodies(await alice.poll()) == [b"and back"]

    asyncio.run(body())
    holders = 0
    for node in shared_cluster().nodes:
        with redis.Redis(host="127.0.0.1", port=node.port) as client:
            holders += bool(list(client.scan_iter(match=f"{namespace}:*", count=1000)))
    assert holders >= 2


@pytest.mark.backend
def test_push_across_relays_on_the_redis_cluster(tmp_path: Path) -> None:
    """bob's socket is on relay 2; what alice sends through relay 1 arrives by push alone
    (the hub's subscription runs on a seed node; PUBLISH is cluster-wide)."""
    endpoints = cluster_endpoints()
    namespace = f"rp{uuid.uuid4().hex[:10]}"

    async def body() -> None:
        on_cluster = _ProxiedProvider(shared_provider(ProviderKind.LOCAL), endpoints)
        async with cluster(on_cluster, tmp_path, namespace) as c:
            alice = await c.device("alice", 0)
            bob = await c.device("bob", 1)
            bob.connect()
            await bob.wait_connected()
            sent = [f"pushed-{i}".encode() for i in range(3)]
            for text in sent:
                await alice.send_text("bob", text)
            assert await pushed(bob, len(sent)) == sent

    asyncio.run(body())


@pytest.mark.backend
def test_the_cluster_shape_runs_a_redis_cluster_when_the_topology_says_so(
    tmp_path: Path,
) -> None:
    """``SEMAFORE_SHAPE=cluster`` + ``SEMAFORE_REDIS_TOPOLOGY=cluster``: the provider's Redis
    URL is the cluster's (three primaries, a replica each), the relay's stores work on it, the
    node serving a user's slot is the fault target a scenario names, and stopping leaves no
    node."""
    env = {"SEMAFORE_PROVIDER": "local", "SEMAFORE_SHAPE": "cluster",
           "SEMAFORE_REDIS_TOPOLOGY": "cluster", "SEMAFORE_INFRA_DIR": str(tmp_path)}
    provider = provider_from_settings(InfraSettings.from_env(env))
    assert isinstance(provider, LocalClusterProvider)

    def start() -> LocalClusterProvider:
        provider.start()
        return provider

    require(start)
    try:
        url = provider.endpoints.redis_url
        assert url is not None and is_cluster_url(url)
        group = provider.redis_cluster
        assert group is not None and group.address.url == url
        assert provider.sentinel_group is None
        assert (len(group.nodes), len(group.replicas)) == (3, 3)
        # the nodes' files are where the oracle's dump looks for Redis's files
        assert all(provider.data_dir("redis") in n.process.spec.log_path.parents
                   for n in group.members)
        ns = RedisNamespace(url, "shape")
        key = ns.user("bob")
        asyncio.run(ns.close())
        assert provider.redis_cluster_primary(key) is group.serving(slot_of(key)).process

        async def body() -> None:
            stores, handles = await backend_stores(provider.endpoints, "shape")
            try:
                await stores.queues.enqueue([envelope("e1"), envelope("e2", user="carol")])
                assert [e.delivery_id for e in await stores.queues.fetch("bob", "d1", 5)] == [
                    "e1"]
            finally:
                await handles.drop()
                await handles.close()

        asyncio.run(body())
        # the fault target "redis" is every node: kill -9 them all, start them again (same
        # ports and nodes.conf: they rejoin, cluster_state ok again) and the stores work
        target = provider.backend("redis")
        assert target is group
        assert target.restart(graceful=False) == Counter(killed=6, started=6)
        assert target.healthy()
        asyncio.run(body())
        nodes = group.processes
    finally:
        provider.stop()
    assert nodes and not any(p.alive for p in nodes)


def test_a_cluster_node_is_no_fault_target_without_a_redis_cluster() -> None:
    provider = LocalClusterProvider(InfraSettings(provider=ProviderKind.LOCAL))
    with pytest.raises(FaultError, match="SEMAFORE_REDIS_TOPOLOGY"):
        provider.redis_cluster_primary("p:{u:bob}")


@pytest.mark.backend
def test_the_external_provider_accepts_a_cluster_url_and_probes_it() -> None:
    """``SEMAFORE_PROVIDER=external`` with ``SEMAFORE_REDIS_URL=redis+cluster://…``: the
    start-up probe asks a seed node for ``cluster_state`` (a URL of no live node is down)."""
    endpoints = cluster_endpoints()
    provider = provider_from_settings(InfraSettings.from_env(endpoints.as_env()))
    provider.start()
    try:
        assert provider.endpoints.redis_url == shared_cluster().address.url
    finally:
        provider.stop()
    assert health.redis_url_ping(shared_cluster().address.url)
    (dead,) = free_ports(1)
    assert not health.redis_url_ping(f"redis+cluster://127.0.0.1:{dead}/0")


def test_a_killed_node_is_a_typed_error_not_a_hang(tmp_path: Path) -> None:
    """A 3-node cluster without replicas loses the slots of a killed node: a send to a user on
    that node fails with a redis error (connection refused, then CLUSTERDOWN) once the
    client's bounded retries are spent. ``wait_for`` turns a hang into a failure."""
    with RedisClusterGroup(redis_server_binary(), tmp_path) as group:

        async def body() -> None:
            store = _store(group.address.url)
            user = "bob"
            victim = group.node_of_slot(slot_of(store.ns.user(user)))
            try:
                await store.enqueue([envelope("before", user=user)])
                victim.process.kill()
                with pytest.raises(RedisError):
                    await asyncio.wait_for(
                        store.enqueue([envelope("after", user=user)]), timeout=120
                    )
            finally:
                await store.ns.close()

        asyncio.run(body())
        # the survivors mark the cluster failed after cluster-node-timeout: the probe says so
        survivors = [n for n in group.nodes if n.process.alive]
        url = f"redis+cluster://127.0.0.1:{survivors[0].port}/0"
        deadline = time.monotonic() + 30
        while health.redis_url_ping(url) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not health.redis_url_ping(url)
        assert group.state(survivors[0].port) == "fail"
