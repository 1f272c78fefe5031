"""The ``containers`` provider's cluster shape (issue #16 item 5, docs/backends.md "Cluster
shape"): Redis primary + replica + three Sentinels (or a Redis Cluster) and SeaweedFS master +
three volume servers + filer, each node its own container on the host network bound to
127.0.0.1, MongoDB one container. One provider is shared by the module (a failover test puts
the group back together before it returns); tests that need another layout start their own.
Local images built by scripts/build-images.sh; in CI a missing engine fails, never skips.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from semafore.deploy import containers_cluster, health
from semafore.deploy.containers import ContainerBackend, docker_client
from semafore.deploy.containers_cluster import REDIS_SERVER, WEED, ContainersClusterProvider
from semafore.deploy.containers_process import LABEL, ContainerLauncher, ContainerProcess
from semafore.deploy.errors import InfraError
from semafore.deploy.processes import free_ports
from semafore.deploy.redis_cluster import RedisClusterGroup, cluster_info
from semafore.deploy.seaweed_cluster import SeaweedCluster, registered_volume_servers
from semafore.deploy.selection import provider_from_settings
from semafore.deploy.sentinel import SENTINELS, SERVICE, replication_role
from semafore.deploy.settings import InfraSettings, ProviderKind, RedisTopology, Shape
from semafore.deploy.stores import backend_stores
from semafore.deploy.testing import prepare_container_engine, require, unavailable
from semafore.storage.redis import RedisNamespace
from semafore.storage.redis_cluster import is_cluster_url, slot_of
from semafore.storage.redis_sentinel import parse_sentinel_url
from simulator.executor import run_scenario
from simulator.report.model import Outcome
from simulator.scenario.loader import load
from tests.backends.test_replicas import bodies, cluster
from tests.deploy.test_seaweed_cluster import survives_losing_a_holder
from tests.simulator.cluster_demo import failover_of
from tests.simulator.test_failover_scenario import FAILOVER
from tests.storage.test_conformance import envelope

pytestmark = [pytest.mark.backend, pytest.mark.containers]


def _settings(work_dir: Path, topology: RedisTopology = RedisTopology.SENTINEL) -> InfraSettings:
    """``SEMAFORE_PROVIDER=containers SEMAFORE_SHAPE=cluster``, as a run would choose it."""
    try:
        prepare_container_engine()  # our own dockerd and the local images
    except InfraError as exc:
        unavailable(str(exc))
    env = {**os.environ, "SEMAFORE_PROVIDER": "containers", "SEMAFORE_SHAPE": "cluster",
           "SEMAFORE_REDIS_TOPOLOGY": topology.value}
    return dataclasses.replace(InfraSettings.from_env(env), work_dir=work_dir)


def _started(settings: InfraSettings) -> ContainersClusterProvider:
    provider = provider_from_settings(settings, redis_durable=True)
    assert isinstance(provider, ContainersClusterProvider)

    def start() -> ContainersClusterProvider:
        provider.start()
        return provider

    require(start)
    return provider


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


START_LOG = _Records()
"""What the module's provider logged while starting (the MongoDB warning)."""


@pytest.fixture(scope="module")
def boxes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ContainersClusterProvider]:
    logger = logging.getLogger("semafore.deploy.containers_cluster")
    logger.addHandler(START_LOG)
    try:
        provider = _started(_settings(tmp_path_factory.mktemp("containers-cluster")))
    finally:
        logger.removeHandler(START_LOG)
    yield provider
    provider.stop()


def _nodes(provider: ContainersClusterProvider) -> list[ContainerProcess]:
    nodes = [proc for launcher in provider.launchers for proc in launcher.created]
    assert all(isinstance(node, ContainerProcess) for node in nodes)
    return nodes


def _sentinel_view(port: int, what: str) -> list[dict[str, str]]:
    """``SENTINEL replicas|sentinels semafore`` from the Sentinel on ``port`` as text maps."""
    with redis.Redis(host="127.0.0.1", port=port, decode_responses=True) as client:
        raw = client.execute_command("SENTINEL", what, SERVICE)
    return [entry if isinstance(entry, dict) else dict(zip(entry[::2], entry[1::2], strict=True))
            for entry in raw]


def _wait_replica_of(port: int, primary: int, timeout: float = 30.0) -> None:
    """Block until the server on ``port`` replicates ``primary`` with its link up."""
    deadline = time.monotonic() + timeout
    info: dict[str, object] = {}
    while time.monotonic() < deadline:
        try:
            with redis.Redis(host="127.0.0.1", port=port) as client:
                info = client.info("replication")
            if info.get("master_port") == primary and info.get("master_link_status") == "up":
                return
        except redis.RedisError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{port} does not replicate {primary}: {info}")


# -- selection ------------------------------------------------------------------------------------


def test_cluster_on_containers_selects_the_containers_cluster_provider() -> None:
    env = {"SEMAFORE_PROVIDER": "containers", "SEMAFORE_SHAPE": "cluster"}
    settings = InfraSettings.from_env(env)
    assert (settings.provider, settings.shape) == (ProviderKind.CONTAINERS, Shape.CLUSTER)
    assert isinstance(provider_from_settings(settings), ContainersClusterProvider)
    single = InfraSettings.from_env({"SEMAFORE_PROVIDER": "containers"})
    assert not isinstance(provider_from_settings(single), ContainersClusterProvider)


# -- the shape ------------------------------------------------------------------------------------


def test_every_node_is_its_own_container_announcing_a_loopback_address(
    boxes: ContainersClusterProvider,
) -> None:
    """Ten node containers (primary, replica, three Sentinels; master, three volume servers,
    filer), each on the host network with its own process bound to 127.0.0.1, and every
    address the engines hand out — the replica and Sentinels each Sentinel found, the volume
    servers the master counts — a 127.0.0.1 one the host reaches."""
    nodes = _nodes(boxes)
    assert len(nodes) == 2 + SENTINELS + 5
    assert len({node.container.id for node in nodes}) == len(nodes)
    for node in nodes:
        node.container.reload()
        attrs = node.container.attrs
        assert attrs["HostConfig"]["NetworkMode"] == "host", node.name
        assert attrs["Config"]["Labels"][LABEL] == "1", node.name
        assert node.status() == "running", node.name
    group = boxes.group()
    assert group.replica is not None
    for redis_node in (group.primary, group.replica):
        with redis.Redis(host="127.0.0.1", port=redis_node.port, decode_responses=True) as c:
            assert c.config_get("bind")["bind"] == "127.0.0.1"
    url = boxes.endpoints.redis_url
    assert url is not None
    assert parse_sentinel_url(url).sentinels == tuple(("127.0.0.1", s.port)
                                                      for s in group.sentinels)
    # whichever server is primary now (another test may have failed the group over)
    [replica_port] = {group.primary.port, group.replica.port} - {group.primary_port()}
    for sentinel in group.sentinels:
        [replica] = _sentinel_view(sentinel.port, "replicas")
        assert (replica["ip"], int(replica["port"])) == ("127.0.0.1", replica_port)
        peers = {("127.0.0.1", s.port) for s in group.sentinels if s is not sentinel}
        assert {(p["ip"], int(p["port"])) for p in _sentinel_view(sentinel.port, "sentinels")} \
            == peers
    weed = boxes.seaweedfs()
    assert registered_volume_servers(weed.master_url) == sorted(v.address for v in weed.volumes)
    assert all(v.address.startswith("127.0.0.1:") for v in weed.volumes)
    assert all("-ip.bind=127.0.0.1" in v.process.spec.argv for v in weed.nodes)
    mongo = boxes.backend("mongodb")
    assert isinstance(mongo, ContainerBackend)
    wrapped = mongo.container.get_wrapped_container()
    wrapped.reload()
    for entries in wrapped.attrs["HostConfig"]["PortBindings"].values():
        assert {e["HostIp"] for e in entries} == {"127.0.0.1"}
    assert health.mongodb_ping(boxes.endpoints.mongodb_url or "")


def test_mongodb_is_one_container_and_the_start_says_so(
    boxes: ContainersClusterProvider,
) -> None:
    """FerretDB has no replica sets: the cluster shape's MongoDB is the single shape's one
    container, and start-up says so in a warning rather than pretending otherwise."""
    assert list(boxes.backends) == ["mongodb"]
    assert boxes.endpoints.mongodb_engine == boxes.settings.images["mongodb"]
    assert any("MongoDB is one container" in m and "not replicated" in m
               for m in START_LOG.messages), START_LOG.messages


def test_a_node_container_takes_every_fault_verb_and_says_what_changed(
    boxes: ContainersClusterProvider,
) -> None:
    """One Sentinel (two stay up, a quorum): paused it answers nothing, resumed it answers,
    stopped and started it comes back on its port; a verb that changes nothing says so with
    an empty effect, as a local process's does."""
    sentinel = boxes.group().sentinels[0]
    node = sentinel.process
    assert isinstance(node, ContainerProcess)

    def answers() -> bool:
        try:
            return health.redis_ping("127.0.0.1", sentinel.port, timeout=0.5)
        except OSError:
            return False

    assert node.pause() == {"paused": 1} and node.status() == "paused"
    assert node.pause() == {}
    assert not answers()
    assert node.resume() == {"resumed": 1} and answers()
    assert node.resume() == {}
    assert node.stop() == {"stopped": 1} and not node.alive and not answers()
    assert node.stop() == {}
    assert node.kill() == {}
    assert node.start() == {"started": 1} and node.healthy()
    assert node.restart() == {"stopped": 1, "started": 1} and node.healthy()


def test_a_port_taken_before_the_primary_binds_it_starts_afresh_on_new_ports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The primary's port is taken (by a listener here) between choosing and binding it: the
    node's container exits with "Address already in use", and the provider removes what it
    started and starts again on new ports instead of failing the run."""
    settings = _settings(tmp_path)
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    picks = iter([[taken.getsockname()[1]]])
    real = free_ports
    monkeypatch.setattr(containers_cluster, "free_ports",
                        lambda count: next(picks, None) or real(count))
    records = _Records()
    logging.getLogger("semafore.deploy.containers_cluster").addHandler(records)
    try:
        provider = provider_from_settings(settings)
        assert isinstance(provider, ContainersClusterProvider)
        try:
            provider.start()  # not require(): a start that gives up must fail this test
            assert provider.redis_server is not None and provider.redis_server.healthy()
            assert taken.getsockname()[1] not in provider.redis_server.spec.argv
        finally:
            provider.stop()
    finally:
        logging.getLogger("semafore.deploy.containers_cluster").removeHandler(records)
        taken.close()
    assert "port taken during start-up, retrying" in records.messages


# -- a relay on it, and a primary killed ----------------------------------------------------------


def test_a_relay_delivers_through_the_cluster_and_across_a_killed_primary_container(
    boxes: ContainersClusterProvider, tmp_path: Path
) -> None:
    """Two relay processes on the containers' sentinel URL: a message and an attachment are
    delivered; the primary's container is SIGKILLed, the Sentinels promote the replica and
    the relays, asking the Sentinels again, keep delivering. The killed node is started
    again afterwards and rejoins as the new primary's replica (the module's group is whole
    for the next test)."""
    group = boxes.group()
    namespace = f"cc{uuid.uuid4().hex[:10]}"
    secret = os.urandom(2048)

    async def body() -> None:
        async with cluster(boxes, tmp_path, namespace) as c:
            alice = await c.device("alice", 0)
            bob = await c.device("bob", 1)
            await alice.send_text("bob", b"before the kill")
            _, pointer = await alice.send_attachment("bob", secret)
            received = await bob.poll()
            assert bodies(received)[0] == b"before the kill"
            assert received[1].content.attachment == pointer
            assert await bob.fetch_attachment(pointer) == secret

            former = group.primary_port()
            victim = boxes.redis_primary()
            assert isinstance(victim, ContainerProcess) and victim is group.node(former).process
            assert victim.kill() == {"killed": 1}
            assert victim.status() == "exited"
            promoted = await asyncio.to_thread(group.wait_promoted, former)
            assert replication_role(promoted) == "master"
            await alice.send_text("bob", b"after the kill")
            await bob.send_text("alice", b"and back")
            assert bodies(await bob.poll()) == [b"after the kill"]
            assert bodies(await alice.poll()) == [b"and back"]

            assert victim.start() == {"started": 1}  # same container, port and data
            await asyncio.to_thread(_wait_replica_of, former, promoted)

    asyncio.run(body())


# -- SeaweedFS: a volume server's container killed ------------------------------------------------


def test_a_blob_survives_killing_the_container_of_a_volume_server_holding_it(
    boxes: ContainersClusterProvider,
) -> None:
    weed = boxes.seaweedfs()
    data = os.urandom(3000) + b"\x00attachment-ciphertext\xff"
    try:
        assert survives_losing_a_holder(weed, data)
    finally:
        for volume in weed.volumes:
            if not volume.process.alive:
                volume.process.start()
        weed.wait_formed()


def test_with_one_copy_the_same_kill_loses_the_blob(
    boxes: ContainersClusterProvider, tmp_path: Path
) -> None:
    """The check above can fail: with replication ``000`` (one copy) the blob is gone when
    its one holder's container is killed, so it is the replication that keeps it."""
    launcher = ContainerLauncher(docker_client(), boxes.settings.images["seaweedfs"], tmp_path)
    single_copy = SeaweedCluster(WEED, tmp_path, replication="000", launch=launcher)
    try:
        single_copy.start()
        assert not survives_losing_a_holder(single_copy, os.urandom(3000))
    finally:
        launcher.remove_all()


# -- SEMAFORE_REDIS_TOPOLOGY=cluster --------------------------------------------------------------


def test_the_redis_cluster_topology_runs_each_node_in_a_container(tmp_path: Path) -> None:
    """A Redis Cluster of containers (three primaries, a replica each): a ``redis+cluster://``
    URL the relay's stores work on, every node reporting ``cluster_state:ok``; the container
    of the node serving a user's slot killed, its replica takes the slot over and the stores
    keep working; stopping the provider leaves no container."""
    provider = _started(_settings(tmp_path, RedisTopology.CLUSTER))
    try:
        url = provider.endpoints.redis_url
        group = provider.redis_cluster
        assert url is not None and is_cluster_url(url)
        assert isinstance(group, RedisClusterGroup) and group.address.url == url
        assert provider.sentinel_group is None and provider.backend("redis") is group
        assert (len(group.nodes), len(group.replicas)) == (3, 3)
        assert all(isinstance(p, ContainerProcess) for p in group.processes)
        assert all(cluster_info(n.port)["cluster_state"] == "ok" for n in group.members)
        assert str(REDIS_SERVER) == group.processes[0].spec.argv[0]
        namespace = "ccluster"
        ns = RedisNamespace(url, namespace)
        slot = slot_of(ns.user("bob"))
        asyncio.run(ns.close())

        async def body() -> None:
            stores, handles = await backend_stores(provider.endpoints, namespace)
            try:
                await stores.queues.enqueue([envelope("e1"), envelope("e2", user="carol")])
                fetched = await stores.queues.fetch("bob", "d1", 5)
                assert [e.delivery_id for e in fetched] == ["e1"]
            finally:
                await handles.drop()
                await handles.close()

        asyncio.run(body())
        victim = provider.redis_cluster_primary(ns.user("bob"))
        assert isinstance(victim, ContainerProcess)
        former = group.serving(slot).port
        assert victim.kill() == {"killed": 1}
        assert group.wait_served(slot, former).port != former
        asyncio.run(body())
        containers = [p for launcher in provider.launchers for p in launcher.created]
        ids = [c.container.id for c in containers]
    finally:
        provider.stop()
    left = docker_client().containers.list(all=True, filters={"label": f"{LABEL}.node"})
    assert not {c.id for c in left} & set(ids)


# -- the failover scenario ------------------------------------------------------------------------


@pytest.mark.timeout(600)
def test_the_redis_primary_failover_scenario_passes_on_containers(tmp_path: Path) -> None:
    """scenarios/desync/redis-primary-failover-during-delivery.yaml with ``--provider
    containers``: its own cluster of containers, the primary's container killed during the
    stream, nothing acknowledged lost or doubled (the window is reported, not bounded)."""
    _settings(tmp_path)  # the engine and the images (SEMAFORE_*_IMAGE) before the run
    result = run_scenario(load(FAILOVER), provider=ProviderKind.CONTAINERS)
    if result.error and "BackendUnavailableError" in result.error:
        unavailable(result.error.splitlines()[0])
    assert result.verdict.value == "pass", (result.error, [(a.kind, a.summary)
                                                            for a in result.assertions])
    outcome, summary, figures = failover_of(result)
    assert outcome is Outcome.HELD, summary
    assert figures["acked_lost"] == 0 and figures["duplicated"] == 0
    assert figures["acked_after_fault"] > 0 and figures["window_s"] > 0
    [kill] = [e for e in result.timeline if e.kind == "infra"]
    assert kill.summary.startswith("kill redis-primary during stream (containers provider)")
    assert {f.fired for f in result.faults} == {True}
