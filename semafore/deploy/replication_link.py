"""A network partition between the Redis primary and its replica, and nothing else: the
replica's replication connection routed through a :class:`~semafore.deploy.faultproxy.
ThreadedFaultProxy` that refuses it (issue #16 item 5, docs/backends.md "Cluster shape"; seed
§3.3, §3.5). The relay's own connections to the primary and the Sentinels' are direct, so they
see a healthy primary that keeps acknowledging writes the replica never receives — until the
primary dies and the Sentinels promote the stale replica (Jepsen's classic lost-write set-up).

Why the replica is pointed at the proxy only when the link is cut: a replica that replicates
through a proxy port reports a master address other than the one the Sentinels monitor, and a
Sentinel "fixes" that (``+fix-slave-config``: ``REPLICAOF`` the real primary) once the
replica's configuration is older than the failover timeout — measured here: 11 s after the
switch with ``failover-timeout`` 10 s. A proxy in place from the start would be gone before any
scenario ran; one switched in by :meth:`ReplicationLink.cut` holds for 10-20 s (the Sentinel
notices the change at its next ``INFO`` of the replica), the partition's real lifetime under
Sentinel, which :meth:`ReplicationLink.routed` reports.

Why a partition must stay short to lose writes: a Sentinel promotes no replica whose link has
been down longer than ten times ``down-after-milliseconds`` plus the time the primary has been
down (the Redis Sentinel documentation, "Replica selection and priority"), 10 s here; a longer
cut turns the primary's death into no failover at all.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from semafore.deploy.errors import FaultError
from semafore.deploy.faultproxy import ThreadedFaultProxy
from semafore.deploy.health import local_redis

if TYPE_CHECKING:
    from semafore.deploy.processes import FaultEffect
    from semafore.deploy.sentinel import SentinelGroup


class ReplicationLink:
    """The link from the group's replica to its primary, as a fault target: :meth:`cut` and
    :meth:`heal` (what changed, as every fault target's verbs return)."""

    name = "redis-replication-link"

    def __init__(self, group: SentinelGroup) -> None:
        self.group = group
        self.proxy: ThreadedFaultProxy | None = None
        self.replica_port: int | None = None
        self.is_cut = False

    def cut(self) -> FaultEffect:
        """Partition the replica from the primary the Sentinels name now: the replica is
        pointed at a proxy to that primary which refuses every connection. Already cut:
        nothing changes (an empty effect)."""
        if self.is_cut:
            return Counter()
        primary = self.group.primary_port()
        replica = self._replica_of(primary)
        if self.proxy is not None:
            self.proxy.close()
        self.proxy = ThreadedFaultProxy("127.0.0.1", primary).start()
        self.proxy.refuse(True)
        with local_redis(replica) as client:
            client.execute_command("REPLICAOF", "127.0.0.1", str(self.proxy.port))
        self.replica_port, self.is_cut = replica, True
        return Counter({"cut": 1})

    def heal(self) -> FaultEffect:
        """Let the replica's connection through again: it reconnects through the proxy and
        resynchronises (until a Sentinel points it straight at the primary). Not cut: an
        empty effect."""
        if not self.is_cut or self.proxy is None:
            return Counter()
        self.proxy.heal()  # accepting again
        self.is_cut = False
        return Counter({"healed": 1})

    def routed(self) -> bool:
        """Whether the replica still replicates through the proxy (a Sentinel's
        ``+fix-slave-config`` ends that: see the module docstring)."""
        if self.proxy is None or self.replica_port is None:
            return False
        with local_redis(self.replica_port) as client:
            info = client.info("replication")
        return int(info.get("master_port", 0)) == self.proxy.port

    def close(self) -> None:
        if self.proxy is not None:
            self.proxy.close()
            self.proxy = None

    def _replica_of(self, primary: int) -> int:
        nodes = [self.group.primary, self.group.replica]
        others = [n.port for n in nodes if n is not None and n.port != primary]
        if len(others) != 1:
            raise FaultError(f"{self.name}: no replica of the primary on {primary}")
        return others[0]
