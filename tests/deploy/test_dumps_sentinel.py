"""Store dumps of the cluster shape's Redis (issue #12 item 3, issue #16 item 5): a
``redis+sentinel://`` URL names a service, not a server, so the dump asks the Sentinels for
the primary *now* and the replicas they see, and reads every copy — the keys of each and the
AOF files each keeps; a ``redis+cluster://`` URL is read on every node, each holding its
slots' keys (docs/backends.md "Raw dumps for the plaintext oracle").

Real processes: the local provider's cluster shape (a primary, a replica, three Sentinels),
durable so each server keeps an AOF. Each test owns its cluster (a failover is destructive).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from semafore.deploy import dumps
from semafore.deploy.cluster import LocalClusterProvider
from semafore.deploy.settings import InfraSettings, ProviderKind, Shape
from semafore.deploy.testing import require
from semafore.gate.live import _dump_redis
from semafore.storage.redis_sentinel import open_redis

CANARY = b"canary-kept-by-every-copy-7f3a"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalClusterProvider]:
    base = InfraSettings.from_env({})
    settings = InfraSettings(**{**base.__dict__, "provider": ProviderKind.LOCAL,
                                "shape": Shape.CLUSTER, "work_dir": tmp_path})
    provider = LocalClusterProvider(settings, redis_durable=True)

    def start() -> LocalClusterProvider:
        provider.start()
        return provider

    require(start)
    yield provider
    provider.stop()


def _write_replicated(url: str, key: str, value: bytes) -> None:
    async def write() -> None:
        client = open_redis(url, socket_timeout=5)
        try:
            await client.set(key, value)
            assert await client.wait(1, 5000) == 1  # WAIT: the replica has it
        finally:
            await client.aclose()

    asyncio.run(write())


@pytest.mark.backend
def test_a_sentinel_url_is_dumped_on_the_primary_and_on_the_replica(
    cluster: LocalClusterProvider,
) -> None:
    group = cluster.group()
    assert group.replica is not None
    url = cluster.endpoints.redis_url
    assert url is not None and url.startswith("redis+sentinel://")
    _write_replicated(url, "ns:probe", CANARY)

    copies = dumps.redis_copies(url)
    replica_label = f"redis-replica@127.0.0.1:{group.replica.port}"
    assert [(c.label, c.url) for c in copies] == [
        ("redis", f"redis://127.0.0.1:{group.primary.port}/0"),
        (replica_label, f"redis://127.0.0.1:{group.replica.port}/0"),
    ]

    hits = dumps.find(dumps.iter_redis(url, data_dir=cluster.data_dir("redis")), CANARY)
    assert "redis:0:b'ns:probe':string" in hits  # the primary's logical value
    assert f"{replica_label}:0:b'ns:probe':string" in hits  # and the replica's
    files = [h for h in hits if "-file:" in h]
    # each server's AOF, read from its own directory (the replica's from CONFIG GET dir)
    assert any(h.startswith("redis-file:") for h in files), hits
    assert any(h.startswith(f"{replica_label}-file:") and "redis-replica" in h
               for h in files), hits

    # the live gate's namespaced dump reads both copies the same way
    gate = {item.source for item in _dump_redis(url, "ns") if item.data == CANARY}
    assert gate == {"redis:0:b'ns:probe':string", f"{replica_label}:0:b'ns:probe':string"}


@pytest.mark.backend
def test_after_a_failover_the_dump_reads_the_promoted_primary(
    cluster: LocalClusterProvider,
) -> None:
    group = cluster.group()
    assert group.replica is not None
    url = cluster.endpoints.redis_url
    assert url is not None
    former, replica = group.primary.port, group.replica.port
    _write_replicated(url, "ns:probe", CANARY)
    cluster.redis_primary().kill()
    assert group.wait_promoted(former) == replica

    # the dead former primary is no copy the Sentinels hand out: only the promoted one
    assert [(c.label, c.url) for c in dumps.redis_copies(url)] == [
        ("redis", f"redis://127.0.0.1:{replica}/0")]
    hits = dumps.find(dumps.iter_redis(url), CANARY)
    assert "redis:0:b'ns:probe':string" in hits


# -- redis+cluster:// (a Redis Cluster: every primary holds its slots' keys) ---------------------


@pytest.fixture
def redis_cluster(tmp_path: Path) -> Iterator[str]:
    from redis.exceptions import RedisError

    from semafore.deploy.errors import InfraError
    from semafore.deploy.redis_cluster import RedisClusterGroup
    from semafore.deploy.testing import redis_server_binary

    group = RedisClusterGroup(redis_server_binary(), tmp_path / "rcluster")
    try:
        group.start()
    except (InfraError, RedisError) as exc:
        group.stop()
        pytest.fail(f"the Redis Cluster did not form: {exc}")
    yield group.address.url
    group.stop()


@pytest.mark.backend
def test_a_cluster_url_is_dumped_on_every_node(redis_cluster: str) -> None:
    """Keys whose slots sit on different nodes: each is found, on the node owning it (a
    dump of one node, as a plain URL would be, misses the others' keys)."""
    from redis.cluster import ClusterNode, RedisCluster

    from semafore.storage.redis_cluster import parse_cluster_url

    nodes = parse_cluster_url(redis_cluster).nodes
    client = RedisCluster(startup_nodes=[ClusterNode(h, p)  # type: ignore[no-untyped-call]
                                         for h, p in nodes])
    keys = [f"ns:probe-{i}" for i in range(12)]
    try:
        for key in keys:
            client.set(key, CANARY + key.encode())
        owners = {key: client.get_node_from_key(key).port  # type: ignore[no-untyped-call]
                  for key in keys}
    finally:
        client.close()
    assert len(set(owners.values())) == 3  # the keys really are spread over the nodes

    copies = dumps.redis_copies(redis_cluster)
    assert sorted(c.label for c in copies) == sorted(f"redis-node@127.0.0.1:{p}" for _, p in nodes)
    hits = set(dumps.find(dumps.iter_redis(redis_cluster), CANARY))
    for key in keys:
        assert f"redis-node@127.0.0.1:{owners[key]}:0:{key.encode()!r}:string" in hits, key
    gate = {item.source for item in _dump_redis(redis_cluster, "ns") if CANARY in item.data
            and item.source.endswith(":string")}
    assert len(gate) == len(keys)
