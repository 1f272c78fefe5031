"""A 3-node Redis Cluster on 127.0.0.1: the ``cluster`` shape's Redis when
``SEMAFORE_REDIS_TOPOLOGY=cluster`` (issue #16 item 5, docs/backends.md "Cluster shape").

Why three primaries: the smallest Redis Cluster the Redis documentation describes (a majority
of primaries must agree to mark one failed), and enough to spread the relay's keys over
several servers so a script that touches keys of two slots fails here as it would in
production. Why no replicas: this group exercises the sharding (hash tags, per-slot steps);
losing a node loses its slots (``cluster-require-full-coverage yes``: the cluster then answers
``CLUSTERDOWN`` for every slot), which the tests show surfaces as a typed error within a
bounded time, not a hang. Replicated Redis with failover is the Sentinel topology
(:mod:`semafore.deploy.sentinel`).

Slots are assigned directly (``CLUSTER ADDSLOTSRANGE``, three even ranges) and the nodes
introduced with ``CLUSTER MEET``: the same result as ``redis-cli --cluster create`` without
needing ``redis-cli``, from the one ``redis-server`` binary the local provider already runs.
"""

from __future__ import annotations

import time
from collections import Counter
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
from semafore.storage.redis_cluster import SLOTS, ClusterAddress

NODES = 3
NODE_TIMEOUT_MS = 2000
"""``cluster-node-timeout``: how long a node may be unreachable before the others mark it
failing (the default 15 s would keep a test waiting; a killed node is refused at once anyway)."""


def cluster_info(port: int) -> dict[str, str]:
    """``CLUSTER INFO`` of the node on ``port`` as text fields (``cluster_state``…)."""
    with local_redis(port) as client:
        raw = client.execute_command("CLUSTER", "INFO")
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    if isinstance(raw, dict):
        return {str(k): str(v) for k, v in raw.items()}
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)


def slot_ranges(nodes: int = NODES) -> list[tuple[int, int]]:
    """Even, contiguous, inclusive slot ranges covering all 16384 slots, one per node."""
    if nodes < 1:
        raise ValueError("nodes: at least one")
    bounds = [round(i * SLOTS / nodes) for i in range(nodes + 1)]
    return [(bounds[i], bounds[i + 1] - 1) for i in range(nodes)]


@dataclass(frozen=True)
class ClusterNodeProcess:
    """One node of the cluster: its supervised process, client port, cluster bus port (set
    explicitly: the default, port + 10000, does not exist for a free port above 55535) and
    slot range."""

    process: ManagedProcess
    port: int
    bus_port: int
    slots: tuple[int, int]


class RedisClusterGroup(ProcessGroup):
    """Start, form, stop a Redis Cluster of ``nodes`` primaries; a context manager::

        with RedisClusterGroup(redis_server, root) as running:
            url = running.address.url      # redis+cluster://127.0.0.1:P1,.../0

    Start-up waits (bounded by ``startup_timeout``) until every node reports
    ``cluster_state:ok`` and knows all others; leaving the block (:meth:`close`) stops every
    node and leaves nothing. The start/stop/kill/pause/resume/restart controls act on every
    node, as the single shape's one ``redis`` process (a :class:`FaultTarget`).
    """

    def __init__(
        self,
        redis_server: Path,
        root: Path,
        *,
        nodes: int = NODES,
        extra_args: list[str] | None = None,
        startup_timeout: float = 30.0,
        launch: Launcher = ManagedProcess,
    ) -> None:
        if nodes < 1:
            raise ValueError("nodes: at least one")
        self.redis_server = redis_server
        self.launch = launch  # a local process, or a container (the containers provider)
        self.root = root
        self.count = nodes
        self.extra_args = extra_args or ["--appendonly", "no", "--save", ""]
        self.startup_timeout = startup_timeout
        self.nodes: list[ClusterNodeProcess] = []

    @property
    def address(self) -> ClusterAddress:
        return ClusterAddress(tuple(("127.0.0.1", n.port) for n in self.nodes))

    @property
    def processes(self) -> list[ManagedProcess]:
        return [n.process for n in self.nodes]

    # -- lifecycle: the whole cluster is one fault target (``provider.backend("redis")``) -----

    name = "redis-cluster"

    def start(self) -> FaultEffect:
        """The first start lays out ports and directories, starts every node and forms the
        cluster; a later one starts the nodes that are not running (same argv, ports and
        ``nodes.conf``: they rejoin by themselves). Both wait until ``cluster_state:ok``."""
        if not self.nodes:
            self._form_new()
            return Counter(started=len(self.nodes))
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
                for n in self.nodes
            )
        except (redis.RedisError, OSError):
            return False

    def close(self) -> None:
        """Stop every node and forget the layout (the group can then start afresh)."""
        self.stop()
        self.nodes.clear()

    def _form_new(self) -> None:
        ports = free_ports(2 * self.count)
        try:
            for index, slots in enumerate(slot_ranges(self.count), 1):
                port, bus = ports[2 * index - 2], ports[2 * index - 1]
                node = ClusterNodeProcess(
                    self.launch(self._spec(index, port, bus)), port, bus, slots)
                self.nodes.append(node)
                node.process.start(wait=False)
            for proc in self.processes:
                proc.wait_healthy(self.startup_timeout)
            self._form()
            self._wait_ok()
        except BaseException:
            self.close()
            raise

    def node_of_slot(self, slot: int) -> ClusterNodeProcess:
        """The node this group assigned ``slot`` to (the fault target for one slot's keys)."""
        for node in self.nodes:
            if node.slots[0] <= slot <= node.slots[1]:
                return node
        raise FaultError(f"slot {slot} belongs to no node of this cluster")

    def state(self, port: int) -> str:
        """``ok`` or ``fail`` as the node on ``port`` reports the cluster."""
        return cluster_info(port).get("cluster_state", "?")

    # -- internals --------------------------------------------------------------------------

    def _spec(self, index: int, port: int, bus: int) -> ProcessSpec:
        data = self.root / f"redis-cluster-{index}"
        data.mkdir(parents=True)
        argv = [
            str(self.redis_server),
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--dir", str(data),
            "--daemonize", "no",
            "--protected-mode", "yes",
            "--logfile", "",
            "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf",
            "--cluster-port", str(bus),
            "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
            "--rdbcompression", "no",
            *self.extra_args,
        ]
        return ProcessSpec(
            f"redis-cluster-{index}", argv, lambda: redis_ping("127.0.0.1", port),
            self.root / f"redis-cluster-{index}.log", cwd=data,
        )

    def _form(self) -> None:
        first = self.nodes[0].port
        for node in self.nodes:
            with local_redis(node.port) as client:
                client.execute_command("CLUSTER", "ADDSLOTSRANGE", *node.slots)
                if node.port != first:
                    client.execute_command(
                        "CLUSTER", "MEET", "127.0.0.1", first, self.nodes[0].bus_port)

    def _wait_ok(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        last = "not asked yet"
        while time.monotonic() < deadline:
            try:
                infos = [cluster_info(n.port) for n in self.nodes]
                if all(i.get("cluster_state") == "ok"
                       and int(i.get("cluster_known_nodes", "0")) == self.count
                       and int(i.get("cluster_slots_ok", "0")) == SLOTS for i in infos):
                    return
                last = "; ".join(f"{n.port}: {i.get('cluster_state')} "
                                 f"{i.get('cluster_known_nodes')} nodes"
                                 for n, i in zip(self.nodes, infos, strict=True))
            except redis.RedisError as exc:
                last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.1)
        raise BackendUnavailableError(
            "redis-cluster", f"cluster not ok after {self.startup_timeout:.0f} s ({last})"
        )
