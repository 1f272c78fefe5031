"""The ``containers`` provider in the ``cluster`` shape (``SEMAFORE_PROVIDER=containers
SEMAFORE_SHAPE=cluster``; issue #16 item 5, docs/backends.md "Cluster shape"): the local
cluster shape's nodes, each its own container.

Redis is a primary, a replica and three Sentinels (:class:`~semafore.deploy.sentinel.
SentinelGroup`, a ``redis+sentinel://`` URL), or with ``SEMAFORE_REDIS_TOPOLOGY=cluster`` a
Redis Cluster of three primaries with a replica each (:class:`~semafore.deploy.
redis_cluster.RedisClusterGroup`, a ``redis+cluster://`` URL); SeaweedFS is a master, three
volume servers keeping every blob twice (``001``) and a filer (:class:`~semafore.deploy.
seaweed_cluster.SeaweedCluster`). The groups are the local shape's own — the same argv,
formation waits, role queries and fault targets — given a :class:`~semafore.deploy.
containers_process.ContainerLauncher`, so the two shapes cannot drift apart; that module says
why the containers share the host's network and bind only 127.0.0.1.

MongoDB stays one container (the single shape's, on a published 127.0.0.1 port): the local
images' MongoDB is FerretDB, which has no replica sets; a warning says so at start-up, as the
local provider does.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from semafore.deploy import health
from semafore.deploy.cluster import ClusterShapeProvider
from semafore.deploy.containers import (
    ContainersProvider,
    docker_client,
    plans,
    redis_persistence,
    require_image,
)
from semafore.deploy.containers_process import ContainerLauncher
from semafore.deploy.errors import BackendUnavailableError
from semafore.deploy.processes import ManagedProcess, ProcessSpec, free_ports
from semafore.deploy.providers import BackendName, Endpoints, FaultTarget
from semafore.deploy.redis_cluster import REPLICAS, RedisClusterGroup
from semafore.deploy.redis_server import redis_server_argv
from semafore.deploy.seaweed_cluster import SeaweedCluster
from semafore.deploy.sentinel import SentinelGroup
from semafore.deploy.settings import InfraSettings, ProviderKind, RedisTopology

log = logging.getLogger(__name__)

REDIS_SERVER = Path("redis-server")
"""The Redis program inside the image (found on the image's ``PATH``: ``redis:7`` and the
local ``semafore/redis:local`` both have it)."""

START_ATTEMPTS = 3

WEED = Path("/usr/bin/weed")
"""The SeaweedFS program inside the image (both ``chrislusf/seaweedfs`` and the local image)."""


class ContainersClusterProvider(ClusterShapeProvider, ContainersProvider):
    """:class:`ContainersProvider` whose Redis and SeaweedFS are clusters of containers.

    Fault targets: ``backend("redis")`` is the initial primary's container (with
    ``SEMAFORE_REDIS_TOPOLOGY=cluster`` the whole Redis Cluster), ``backend("seaweedfs")`` the
    whole SeaweedFS cluster, ``backend("mongodb")`` the MongoDB container; one node is the
    group's ``ManagedProcess`` (``group().replica.process``, ``seaweedfs().volumes[i].process``,
    ``redis_primary()``), with the same verbs and :data:`~semafore.deploy.processes.FaultEffect`.
    """

    def __init__(self, settings: InfraSettings, *, redis_durable: bool = False) -> None:
        super().__init__(settings, redis_durable=redis_durable)
        self.root: Path | None = None
        self.launchers: list[ContainerLauncher] = []
        self.redis_server: ManagedProcess | None = None
        self.sentinel_group: SentinelGroup | None = None
        self.redis_cluster: RedisClusterGroup | None = None
        self.seaweed_cluster: SeaweedCluster | None = None

    def _start(self) -> Endpoints:
        # A port chosen free can be taken by another process before a node binds it (the
        # machine's test runs share it): start afresh on new ports, a few times, as local does.
        for attempt in range(START_ATTEMPTS):
            try:
                return self._start_once()
            except BackendUnavailableError as exc:
                if "address already in use" not in exc.log_tail.lower() \
                        or attempt == START_ATTEMPTS - 1:
                    raise
                log.warning("port taken during start-up, retrying",
                            extra={"backend": exc.backend})
                self._stop()
        raise AssertionError("unreachable")

    def _start_once(self) -> Endpoints:
        client = docker_client()
        images = dict(self.settings.images)
        for name in ("redis", "seaweedfs"):
            require_image(client, name, images[name])
        if self.settings.work_dir is not None:
            self.settings.work_dir.mkdir(parents=True, exist_ok=True)
        root = Path(tempfile.mkdtemp(prefix="semafore-containers-", dir=self.settings.work_dir))
        self.root = root
        (mongo_plan,) = (p for p in plans(images) if p.name == "mongodb")
        mongo = self._run(client, mongo_plan)  # boots while the clusters form
        redis_launch = self._launcher(client, images["redis"], root)
        persistence = redis_persistence(self.redis_durable)
        if self.settings.redis_topology is RedisTopology.CLUSTER:
            nodes = RedisClusterGroup(
                REDIS_SERVER, root / "redis", replicas=REPLICAS, extra_args=persistence,
                launch=redis_launch,
            )
            self.redis_cluster = nodes
        else:
            spec, primary_port = self._primary_spec(root, persistence)
            self.redis_server = redis_launch(spec)
            self.redis_server.start(wait=False)
        seaweed = SeaweedCluster(
            WEED, root, launch=self._launcher(client, images["seaweedfs"], root))
        self.seaweed_cluster = seaweed
        seaweed.start()
        if self.redis_cluster is not None:
            self.redis_cluster.start()
            redis_url = self.redis_cluster.address.url
        else:
            assert self.redis_server is not None
            self.redis_server.wait_healthy()
            group = SentinelGroup(
                REDIS_SERVER, root, self.redis_server, primary_port,
                replica_args=persistence, launch=redis_launch,
            )
            self.sentinel_group = group
            redis_url = group.start().url
        mongo.wait_healthy()
        log.warning("cluster shape: MongoDB is one container of %s, not replicated (FerretDB "
                    "has no replica sets)", images["mongodb"])
        mongo_port = mongo.host_ports[27017]
        return Endpoints(
            ProviderKind.CONTAINERS,
            mongodb_url=f"mongodb://127.0.0.1:{mongo_port}/?directConnection=true",
            redis_url=redis_url,
            seaweedfs_filer_url=seaweed.filer_url,
            seaweedfs_master_url=seaweed.master_url,  # no S3 gateway (seaweed_cluster says why)
            mongodb_engine=images["mongodb"],
        )

    def _launcher(self, client: Any, image: str, root: Path) -> ContainerLauncher:
        launcher = ContainerLauncher(client, image, root)
        self.launchers.append(launcher)
        return launcher

    @staticmethod
    def _primary_spec(root: Path, persistence: list[str]) -> tuple[ProcessSpec, int]:
        """The Sentinel group's initial primary: the local shape's ``redis`` process, its files
        in ``root/redis`` (:meth:`data_dir`)."""
        (port,) = free_ports(1)
        data = root / "redis"
        data.mkdir()
        spec = ProcessSpec(
            "redis", redis_server_argv(REDIS_SERVER, port, data, *persistence),
            lambda: health.redis_ping("127.0.0.1", port), root / "redis.log", cwd=data,
        )
        return spec, port

    def _stop(self) -> None:
        """Remove every container (killed: their data goes with the root directory anyway),
        then the MongoDB container and the data."""
        for launcher in self.launchers:
            launcher.remove_all()
        self.launchers.clear()
        self.redis_server = None
        self.sentinel_group = None
        self.redis_cluster = None
        self.seaweed_cluster = None
        super()._stop()
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def backend(self, name: BackendName) -> FaultTarget:  # type: ignore[override]
        """As the local cluster shape: ``seaweedfs`` and (Redis Cluster) ``redis`` are whole
        groups, ``redis`` (Sentinel) the initial primary, ``mongodb`` its container."""
        if name == "seaweedfs":
            return self.seaweedfs()
        if name == "redis" and self.redis_cluster is not None:
            return self.redis_cluster
        if name == "redis" and self.redis_server is not None:
            return self.redis_server
        return super().backend(name)

    def data_dir(self, name: BackendName) -> Path | None:
        """Where a node keeps its files on this machine (bind-mounted into its container):
        ``redis`` the initial primary's (or every Redis Cluster node's), ``seaweedfs`` every
        SeaweedFS node's; MongoDB's stay inside its container."""
        if self.root is None or name == "mongodb":
            return None
        return self.root / name
