"""Redis replication under Sentinel on 127.0.0.1: a primary, one replica (``replicaof``) and
three Sentinels, the ``cluster`` shape's Redis (issue #16 item 5, docs/backends.md "Cluster
shape").

Why three Sentinels with a quorum of two: the smallest group in which one Sentinel's opinion
cannot fail a primary over on its own, and losing one Sentinel still leaves a majority to
authorise a failover (the Redis documentation's minimal setup). Why the short
``down-after-milliseconds``: the failover scenario measures the unavailability window, and a
test cannot wait for the 30 s default.

Replication is asynchronous: the primary acknowledges a write before the replica has it, so a
primary killed right after an acknowledgement can take that write with it when the replica is
promoted. ``min_replicas_to_write`` (Redis ``min-replicas-to-write``) makes the primary refuse
writes while no replica is connected, bounding what can be lost; only ``WAIT`` after each write
makes an acknowledged write be on the replica (docs/backends.md lists the figures measured).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import redis

from semafore.deploy.errors import BackendUnavailableError, FaultError
from semafore.deploy.health import local_redis, redis_ping
from semafore.deploy.processes import Launcher, ManagedProcess, ProcessSpec, free_ports
from semafore.deploy.redis_server import redis_server_argv
from semafore.storage.redis_sentinel import SentinelAddress

SERVICE = "semafore"
"""The name the Sentinels monitor (``SERVICE`` in the ``redis+sentinel://`` URL)."""

SENTINELS = 3
QUORUM = 2
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 10_000


def replication_role(port: int) -> str:
    """``master`` or ``slave`` as the server on ``port`` reports itself (``INFO replication``)."""
    with local_redis(port) as client:
        info = client.info("replication")
    return str(info["role"])


def _replica_in_sync(port: int) -> bool:
    with local_redis(port) as client:
        info = client.info("replication")
    return bool(info.get("role") == "slave" and info.get("master_link_status") == "up")


@dataclass(frozen=True)
class RedisNode:
    """One Redis server of the group: its supervised process and port."""

    process: ManagedProcess
    port: int


class SentinelGroup:
    """A replica and three Sentinels around a running primary on ``primary_port``.

    The primary itself is started by the caller (the local provider's ``redis`` process, so
    its durability options and fault controls stay the single shape's); this group starts the
    rest, waits until the replica is in sync and every Sentinel sees the replica and the two
    other Sentinels (a failover can only be authorised then), and stops what it started.
    """

    def __init__(
        self,
        redis_server: Path,
        root: Path,
        primary: ManagedProcess,
        primary_port: int,
        *,
        replica_args: list[str],
        min_replicas_to_write: int = 0,
        startup_timeout: float = 30.0,
        launch: Launcher = ManagedProcess,
    ) -> None:
        self.redis_server = redis_server
        self.launch = launch  # a local process, or a container (the containers provider)
        self.root = root
        self.primary = RedisNode(primary, primary_port)
        self.replica_args = replica_args
        self.min_replicas_to_write = min_replicas_to_write
        self.startup_timeout = startup_timeout
        self.replica: RedisNode | None = None
        self.sentinels: list[RedisNode] = []

    @property
    def address(self) -> SentinelAddress:
        return SentinelAddress(tuple(("127.0.0.1", s.port) for s in self.sentinels), SERVICE)

    @property
    def processes(self) -> list[ManagedProcess]:
        nodes = [self.replica, *self.sentinels] if self.replica else self.sentinels
        return [n.process for n in nodes]

    def start(self) -> SentinelAddress:
        replica_port, *sentinel_ports = free_ports(1 + SENTINELS)
        if self.min_replicas_to_write:
            with local_redis(self.primary.port) as client:
                client.config_set("min-replicas-to-write", self.min_replicas_to_write)
                client.config_set("min-replicas-max-lag", 10)
        self.replica = RedisNode(self.launch(self._replica_spec(replica_port)), replica_port)
        self.replica.process.start(wait=False)
        for index, port in enumerate(sentinel_ports, 1):
            node = RedisNode(self.launch(self._sentinel_spec(index, port)), port)
            self.sentinels.append(node)
            node.process.start(wait=False)
        for proc in self.processes:
            proc.wait_healthy(self.startup_timeout)
        self._wait_formed()
        return self.address

    def stop(self) -> None:
        for proc in reversed(self.processes):
            proc.stop()
        self.sentinels.clear()
        self.replica = None

    def node(self, port: int) -> RedisNode:
        """The Redis server (primary or replica) listening on ``port``."""
        for candidate in (self.primary, self.replica):
            if candidate is not None and candidate.port == port:
                return candidate
        raise FaultError(f"no redis server of the sentinel group listens on {port}")

    def primary_port(self, *, unanimous: bool = False) -> int:
        """The port of the primary, as a majority of the live Sentinels names it (``unanimous``:
        as every live Sentinel names it, else a :class:`BackendUnavailableError`)."""
        votes: dict[int, int] = {}
        for sentinel in self.sentinels:
            if not sentinel.process.alive:
                continue
            try:
                with local_redis(sentinel.port) as client:
                    answer = client.execute_command("SENTINEL", "get-master-addr-by-name", SERVICE)
            except redis.RedisError:
                continue
            if answer:
                port = int(answer[1])
                votes[port] = votes.get(port, 0) + 1
        if not votes:
            raise BackendUnavailableError("redis-sentinel", "no sentinel names a primary")
        port, count = max(votes.items(), key=lambda kv: kv[1])
        if count < QUORUM or (unanimous and len(votes) > 1):
            raise BackendUnavailableError("redis-sentinel", f"sentinels disagree: {votes}")
        return port

    def wait_promoted(self, former: int, timeout: float = 30.0) -> int:
        """Block until every live Sentinel names a primary other than port ``former`` and
        that server reports itself ``master``; its port. A failover that does not happen in
        ``timeout`` is a :class:`BackendUnavailableError`.

        Why every Sentinel, not a quorum: a Sentinel still holding the old configuration when
        ``former`` is started again takes it for the primary it knew and makes the promoted
        server its replica, which then drops its data for ``former``'s (seen twice in one
        loaded full test run: the promoted server replicating the restarted one, and the
        acknowledged sends written before the kill gone)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                port = self.primary_port(unanimous=True)
                if port != former and replication_role(port) == "master":
                    return port
            except (BackendUnavailableError, redis.RedisError):
                pass
            time.sleep(0.05)
        raise BackendUnavailableError("redis-sentinel", f"no failover from {former} in {timeout} s")

    # -- specs ----------------------------------------------------------------------------------

    def _replica_spec(self, port: int) -> ProcessSpec:
        data = self.root / "redis-replica"
        data.mkdir()
        argv = redis_server_argv(
            self.redis_server, port, data,
            "--replicaof", "127.0.0.1", str(self.primary.port), *self.replica_args,
        )
        return ProcessSpec(
            "redis-replica", argv, lambda: _replica_in_sync(port),
            self.root / "redis-replica.log", cwd=data,
        )

    def _sentinel_spec(self, index: int, port: int) -> ProcessSpec:
        # Sentinel rewrites its configuration file (the epoch, the peers it found), so each
        # gets its own writable file; ``redis-server FILE --sentinel`` is redis-sentinel.
        data = self.root / f"sentinel-{index}"
        data.mkdir()
        conf = data / "sentinel.conf"
        conf.write_text(
            "\n".join((
                f"port {port}",
                "bind 127.0.0.1",
                "daemonize no",
                f'dir "{data}"',
                'logfile ""',
                f"sentinel monitor {SERVICE} 127.0.0.1 {self.primary.port} {QUORUM}",
                f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}",
                f"sentinel failover-timeout {SERVICE} {FAILOVER_TIMEOUT_MS}",
                f"sentinel parallel-syncs {SERVICE} 1",
                "",
            ))
        )
        return ProcessSpec(
            f"redis-sentinel-{index}",
            [str(self.redis_server), str(conf), "--sentinel"],
            lambda: redis_ping("127.0.0.1", port),
            self.root / f"sentinel-{index}.log",
            cwd=data,
        )

    def _wait_formed(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        last = "not asked yet"
        while time.monotonic() < deadline:
            try:
                if all(self._sentinel_formed(s.port) for s in self.sentinels):
                    return
                last = "a sentinel does not yet see the replica and both other sentinels"
            except redis.RedisError as exc:
                last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.1)
        raise BackendUnavailableError(
            "redis-sentinel", f"group not formed after {self.startup_timeout:.0f} s ({last})"
        )

    def _sentinel_formed(self, port: int) -> bool:
        with local_redis(port) as client:
            raw = client.execute_command("SENTINEL", "master", SERVICE)
        fields = raw if isinstance(raw, dict) else dict(zip(raw[::2], raw[1::2], strict=True))
        info = {_text(k): _text(v) for k, v in fields.items()}
        return (
            int(info.get("num-slaves", "0")) >= 1
            and int(info.get("num-other-sentinels", "0")) >= SENTINELS - 1
            and int(info.get("port", "0")) == self.primary.port
        )


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
