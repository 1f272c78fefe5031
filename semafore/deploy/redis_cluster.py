"""A Redis Cluster on 127.0.0.1: the ``cluster`` shape's Redis when
``SEMAFORE_REDIS_TOPOLOGY=cluster`` (issue #16 item 5, docs/backends.md "Cluster shape").

Why three primaries: the smallest Redis Cluster the Redis documentation describes (a majority
of primaries must agree to mark one failed), and enough to spread the relay's keys over
several servers so a script that touches keys of two slots fails here as it would in
production. Why one replica per primary in the cluster shape (:data:`REPLICAS`): the Redis
documentation's minimal production layout (three primaries, three replicas), and what lets the
cluster survive losing a node — the surviving primaries mark it failed after
``cluster-node-timeout`` and its replica wins the election and takes over its slots, with no
Sentinel (Redis Cluster specification, "Replica election and promotion"). Without replicas
(``replicas=0``, the sharding-only group the storage conformance run uses) losing a node loses
its slots (``cluster-require-full-coverage yes``: the cluster then answers ``CLUSTERDOWN`` for
every slot), which the tests show surfaces as a typed error within a bounded time, not a hang.

Replication is asynchronous here as under Sentinel (:mod:`semafore.deploy.sentinel`): a
primary acknowledges a write before its replica has it, so a primary killed right after an
acknowledgement can take the write with it when the replica is promoted; ``WAIT`` on the
key's node is what makes an acknowledged write be on the replica (docs/backends.md).

Slots are assigned directly (``CLUSTER ADDSLOTSRANGE``, three even ranges), the nodes
introduced with ``CLUSTER MEET`` and each replica attached with ``CLUSTER REPLICATE``: the same
result as ``redis-cli --cluster create --cluster-replicas 1`` without needing ``redis-cli``,
from the one ``redis-server`` binary the local provider already runs.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import redis

from semafore.deploy.errors import BackendUnavailableError, FaultError
from semafore.deploy.health import local_redis, redis_ping
from semafore.deploy.processes import (
    FaultEffect,
    Launcher,
    ManagedProcess,
    ProcessGroup,
    ProcessSpec,
    ProcessState,
    free_ports,
)
from semafore.deploy.redis_server import redis_server_argv
from semafore.storage.redis_cluster import SLOTS, ClusterAddress

NODES = 3
REPLICAS = 1
"""Replicas per primary in the cluster shape (:class:`semafore.deploy.cluster.
LocalClusterProvider`); a group started without the argument has none."""
NODE_TIMEOUT_MS = 2000
"""``cluster-node-timeout``: how long a node may be unreachable before the others mark it
failing and its replica may be promoted (the default 15 s would keep a failover scenario
waiting; a killed node is refused at once anyway)."""


def cluster_info(port: int) -> dict[str, str]:
    """``CLUSTER INFO`` of the node on ``port`` as text fields (``cluster_state``…)."""
    with local_redis(port) as client:
        raw = client.execute_command("CLUSTER", "INFO")
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    if isinstance(raw, dict):
        return {str(k): str(v) for k, v in raw.items()}
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)


@dataclass(frozen=True)
class NodeView:
    """What one node says of itself (its ``myself`` line of ``CLUSTER NODES``): its id,
    whether it is a primary, its config epoch and the slot ranges it serves."""

    node_id: str
    primary: bool
    epoch: int
    slots: tuple[tuple[int, int], ...]

    def serves(self, slot: int) -> bool:
        return self.primary and any(low <= slot <= high for low, high in self.slots)


def node_view(port: int) -> NodeView:
    """The node on ``port`` as it describes itself. A node's own view decides what it
    serves: it answers a key of a slot it believes it owns and redirects (``MOVED``) the
    rest, whatever the others believe."""
    with local_redis(port) as client:
        raw = client.execute_command("CLUSTER", "NODES")
    view = parse_myself(raw.decode() if isinstance(raw, bytes) else str(raw))
    if view is None:
        raise BackendUnavailableError("redis-cluster", f"node {port}: no 'myself' line")
    return view


def parse_myself(text: str) -> NodeView | None:
    """The ``myself`` line of a ``CLUSTER NODES`` answer (Redis Cluster specification:
    ``id addr flags primary ping pong epoch link slot...``); None if there is none."""
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 8 and "myself" in fields[2].split(","):
            ranges = []
            for part in fields[8:]:
                if part.startswith("["):  # a slot being migrated or imported: not served
                    continue
                low, _, high = part.partition("-")
                ranges.append((int(low), int(high or low)))
            return NodeView(fields[0], "master" in fields[2].split(","), int(fields[6]),
                            tuple(ranges))
    return None


def slot_ranges(nodes: int = NODES) -> list[tuple[int, int]]:
    """Even, contiguous, inclusive slot ranges covering all 16384 slots, one per node."""
    if nodes < 1:
        raise ValueError("nodes: at least one")
    bounds = [round(i * SLOTS / nodes) for i in range(nodes + 1)]
    return [(bounds[i], bounds[i + 1] - 1) for i in range(nodes)]


@dataclass(frozen=True)
class ClusterNodeProcess:
    """One node of the cluster: its supervised process, client port, cluster bus port (set
    explicitly: the default, port + 10000, does not exist for a free port above 55535), the
    slot range it was formed to serve and, for a replica, the port of the primary it was
    formed to replicate. Roles change with a failover: :meth:`RedisClusterGroup.serving`
    asks the cluster who serves a slot now."""

    process: ManagedProcess
    port: int
    bus_port: int
    slots: tuple[int, int]
    replica_of: int | None = None


class RedisClusterGroup(ProcessGroup):
    """Start, form, stop a Redis Cluster of ``nodes`` primaries with ``replicas`` replicas
    each; a context manager::

        with RedisClusterGroup(redis_server, root, replicas=1) as running:
            url = running.address.url      # redis+cluster://127.0.0.1:P1,.../0

    Start-up waits (bounded by ``startup_timeout``) until every node reports
    ``cluster_state:ok`` and knows all others and every replica is in sync with its primary;
    leaving the block (:meth:`close`) stops every node and leaves nothing. The
    start/stop/kill/pause/resume/restart controls act on every node, as the single shape's one
    ``redis`` process (a :class:`FaultTarget`); one node's: ``serving(slot).process``.
    """

    def __init__(
        self,
        redis_server: Path,
        root: Path,
        *,
        nodes: int = NODES,
        replicas: int = 0,
        extra_args: list[str] | None = None,
        startup_timeout: float = 30.0,
        launch: Launcher = ManagedProcess,
    ) -> None:
        if nodes < 1:
            raise ValueError("nodes: at least one")
        if replicas < 0:
            raise ValueError("replicas: zero or more per primary")
        self.redis_server = redis_server
        self.launch = launch  # a local process, or a container (the containers provider)
        self.root = root
        self.count = nodes
        self.replicas_per_primary = replicas
        self.extra_args = extra_args or ["--appendonly", "no", "--save", ""]
        self.startup_timeout = startup_timeout
        self.nodes: list[ClusterNodeProcess] = []
        """The primaries as formed, one per slot range."""
        self.replicas: list[ClusterNodeProcess] = []
        """The replicas as formed (``replica_of`` names each one's primary)."""

    @property
    def members(self) -> list[ClusterNodeProcess]:
        """Every node, primaries as formed first."""
        return [*self.nodes, *self.replicas]

    @property
    def size(self) -> int:
        """How many nodes the cluster has when whole."""
        return self.count * (1 + self.replicas_per_primary)

    @property
    def address(self) -> ClusterAddress:
        """Every node as a seed (a client that finds one seed dead asks the next)."""
        return ClusterAddress(tuple(("127.0.0.1", n.port) for n in self.members))

    @property
    def processes(self) -> list[ManagedProcess]:
        return [n.process for n in self.members]

    # -- lifecycle: the whole cluster is one fault target (``provider.backend("redis")``) -----

    name = "redis-cluster"

    def start(self) -> FaultEffect:
        """The first start lays out ports and directories, starts every node and forms the
        cluster; a later one starts the nodes that are not running (same argv, ports and
        ``nodes.conf``: they rejoin by themselves, a former primary whose replica was promoted
        as that node's replica). Both wait until the cluster is whole (:meth:`_wait_ok`)."""
        if not self.nodes:
            self._form_new()
            return Counter(started=self.size)
        paused = [p.name for p in self.processes if p.state is ProcessState.PAUSED]
        if paused:
            raise FaultError(f"{self.name}: {', '.join(paused)} paused; resume, not start")
        effect: FaultEffect = Counter()
        for proc in self.processes:
            if not proc.alive:
                effect += proc.start(wait=False)
        for proc in self.processes:
            proc.wait_healthy(self.startup_timeout)
        self._wait_ok()
        return effect

    def healthy(self) -> bool:
        """Every node answers and reports ``cluster_state:ok``; one probe, no waiting."""
        try:
            return bool(self.nodes) and all(
                n.process.healthy() and cluster_info(n.port).get("cluster_state") == "ok"
                for n in self.members
            )
        except (redis.RedisError, OSError):
            return False

    def close(self) -> None:
        """Stop every node and forget the layout (the group can then start afresh)."""
        self.stop()
        self.nodes.clear()
        self.replicas.clear()

    def _form_new(self) -> None:
        ports = free_ports(2 * self.size)
        ranges = slot_ranges(self.count)
        try:
            for index in range(self.size):
                port, bus = ports[2 * index], ports[2 * index + 1]
                primary = None if index < self.count else self.nodes[index % self.count]
                node = ClusterNodeProcess(
                    self.launch(self._spec(index + 1, port, bus)), port, bus,
                    ranges[index % self.count], None if primary is None else primary.port)
                (self.nodes if primary is None else self.replicas).append(node)
                node.process.start(wait=False)
            for proc in self.processes:
                proc.wait_healthy(self.startup_timeout)
            self._form()
            self._wait_ok()
        except BaseException:
            self.close()
            raise

    def node_of_slot(self, slot: int) -> ClusterNodeProcess:
        """The primary this group assigned ``slot`` to when it formed (after a failover the
        slot is served by another node: :meth:`serving`)."""
        for node in self.nodes:
            if node.slots[0] <= slot <= node.slots[1]:
                return node
        raise FaultError(f"slot {slot} belongs to no node of this cluster")

    def node(self, port: int) -> ClusterNodeProcess:
        """The node listening on ``port``."""
        for node in self.members:
            if node.port == port:
                return node
        raise FaultError(f"no node of {self.name} listens on {port}")

    def serving(self, slot: int) -> ClusterNodeProcess:
        """The live node that serves ``slot`` now: the primary that claims it, the one with
        the newest config epoch if two do (a former primary that has not yet learnt of its
        replica's promotion). The fault target of one slot's keys: after a failover, the
        promoted replica. :class:`BackendUnavailableError` when no live node serves it (its
        primary is gone and no replica is promoted yet)."""
        claims: list[tuple[int, ClusterNodeProcess]] = []
        for node in self.members:
            if not node.process.alive or node.process.state is ProcessState.PAUSED:
                continue
            try:
                view = node_view(node.port)
            except redis.RedisError:
                continue
            if view.serves(slot):
                claims.append((view.epoch, node))
        if not claims:
            raise BackendUnavailableError(self.name, f"no live node serves slot {slot}")
        return max(claims, key=lambda claim: claim[0])[1]

    def replicas_of(self, port: int) -> list[ClusterNodeProcess]:
        """The live nodes replicating the node on ``port`` now (``INFO replication``: role
        replica, ``master_port``): who a failover away from it can promote."""
        found = []
        for node in self.members:
            if node.port == port or not node.process.alive:
                continue
            try:
                with local_redis(node.port) as client:
                    info = client.info("replication")
            except redis.RedisError:
                continue
            if info.get("role") == "slave" and int(info.get("master_port", 0)) == port:
                found.append(node)
        return found

    def wait_served(self, slot: int, former: int, timeout: float = 30.0) -> ClusterNodeProcess:
        """Block until a node other than the one on port ``former`` serves ``slot`` and
        reports ``cluster_state:ok``; that node. A failover that does not happen in
        ``timeout`` is a :class:`BackendUnavailableError` naming the slot."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                node = self.serving(slot)
                if node.port != former and self.state(node.port) == "ok":
                    return node
            except (BackendUnavailableError, redis.RedisError):
                pass
            time.sleep(0.05)
        raise BackendUnavailableError(
            self.name, f"slot {slot}: no failover from {former} in {timeout:.0f} s")

    def state(self, port: int) -> str:
        """``ok`` or ``fail`` as the node on ``port`` reports the cluster."""
        return cluster_info(port).get("cluster_state", "?")

    # -- internals --------------------------------------------------------------------------

    def _spec(self, index: int, port: int, bus: int) -> ProcessSpec:
        data = self.root / f"redis-cluster-{index}"
        data.mkdir(parents=True)
        argv = redis_server_argv(
            self.redis_server, port, data,
            "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf",
            "--cluster-port", str(bus),
            "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
            *self.extra_args,
        )
        return ProcessSpec(
            f"redis-cluster-{index}", argv, lambda: redis_ping("127.0.0.1", port),
            self.root / f"redis-cluster-{index}.log", cwd=data,
        )

    def _form(self) -> None:
        first = self.nodes[0]
        for node in self.members:
            with local_redis(node.port) as client:
                if node.replica_of is None:
                    client.execute_command("CLUSTER", "ADDSLOTSRANGE", *node.slots)
                if node is not first:
                    client.execute_command("CLUSTER", "MEET", "127.0.0.1", first.port,
                                           first.bus_port)
        if self.replicas:
            # a replica can only be attached to a primary it knows: after the gossip from
            # the MEETs has reached every node
            self._wait(lambda infos: all(int(i.get("cluster_known_nodes", "0")) == self.size
                                         for i in infos), "nodes meeting")
            for replica in self.replicas:
                assert replica.replica_of is not None
                primary_id = node_view(replica.replica_of).node_id
                with local_redis(replica.port) as client:
                    client.execute_command("CLUSTER", "REPLICATE", primary_id)

    def _wait_ok(self) -> None:
        """Until the cluster is whole: every node ``ok``, knowing every other, every slot
        served, ``count`` primaries serving slots and every replica's link to its primary up
        (a replica not yet in sync could not be promoted with the data)."""

        def whole(infos: list[dict[str, str]]) -> bool:
            return all(i.get("cluster_state") == "ok"
                       and int(i.get("cluster_known_nodes", "0")) == self.size
                       and int(i.get("cluster_slots_ok", "0")) == SLOTS
                       and int(i.get("cluster_size", "0")) == self.count
                       for i in infos) and self._replicas_in_sync()

        self._wait(whole, "cluster ok")

    def _replicas_in_sync(self) -> bool:
        synced = 0
        for node in self.members:
            with local_redis(node.port) as client:
                info = client.info("replication")
            if info.get("role") == "slave":
                if info.get("master_link_status") != "up":
                    return False
                synced += 1
        return synced == self.count * self.replicas_per_primary

    def _wait(self, done: Callable[[list[dict[str, str]]], bool], what: str) -> None:
        deadline = time.monotonic() + self.startup_timeout
        last = "not asked yet"
        while time.monotonic() < deadline:
            try:
                infos = [cluster_info(n.port) for n in self.members]
                if done(infos):
                    return
                last = "; ".join(f"{n.port}: {i.get('cluster_state')} "
                                 f"{i.get('cluster_known_nodes')} nodes"
                                 for n, i in zip(self.members, infos, strict=True))
            except redis.RedisError as exc:
                last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.1)
        raise BackendUnavailableError(
            "redis-cluster", f"{what}: not after {self.startup_timeout:.0f} s ({last})"
        )
