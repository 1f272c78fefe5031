"""Relay replicas of a simulation: N relays in this event loop on one set of stores (seed §3.4:
horizontally scaled application tier sharing state in MongoDB and Redis).

Every replica is a real relay (its own ASGI app, uvicorn server, listening socket and push hub)
on the *same* stores: the in-memory store objects on ``embedded``, the same MongoDB, Redis and
SeaweedFS elsewhere. Push crosses replicas the way it does in production: on real backends each
replica has its own :class:`~semafore.server.push.RedisPushHub` (Redis pub/sub); on ``embedded``
each has a :class:`BusPushHub` on one :class:`LocalPushBus`, which does what Redis does there
(the recipient's replica is woken and pulls the queue from the store; only ids cross).

Faults (scenario ``infra`` steps on ``target: server``, docs/simulator.md):

- ``stop``: graceful — the server stops accepting, closes its WebSockets (close frame 1012),
  finishes in-flight requests, runs its shutdown hooks;
- ``kill``: a crash — the listening socket closes, every connection is reset (no close frame),
  every in-flight request task is cancelled where it stands;
- ``pause``/``unpause``: a SIGSTOP. An in-process relay cannot be stopped alone, so every
  replica is reached through its own front socket (:class:`_Front`, a byte pipe in front of
  the uvicorn socket: what clients see as the replica's address), and a pause freezes it:
  open connections stay open, new ones are accepted (as the kernel's backlog would) and hang,
  nothing is answered; on unpause every held byte goes through in order and the queued work
  is done. (The relay's own timers keep running meanwhile, which a real SIGSTOP would freeze
  too: pauses longer than the WebSocket ping timeout, 20 s, are not faithful.)
- ``start``/``restart``: a fresh relay (new app, empty in-memory state) on the same port and
  stores with the same settings, so tokens signed before still verify.

Each action returns an :class:`InfraRecord` of what it changed (issue #11, "faults prove
they fired"): a stop of a stopped replica or an unpause of a running one changes nothing and
says so (zero counts and a reason) instead of raising; pausing or unpausing a replica that
is not running at all is an error (there is no process to signal).

Devices are assigned to replicas by :func:`assign` (explicit pins, else a hash of the scenario
seed and the device address) and fail over, in a fixed order, to the next replica that accepts
a connection (:func:`preference`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import socket
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal

import uvicorn

from semafore.server.app import create_app
from semafore.server.push import PushHub, PushPort
from semafore.server.serving import uvicorn_config
from semafore.server.settings import Settings
from semafore.storage.ports import QueuedEnvelope, Stores

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
PushFactory = Callable[[int], PushPort]
"""Replica index -> that replica's push hub."""


class ReplicaError(Exception):
    """A replica cannot do what was asked (start a running one, pause a stopped one...)."""


class ReplicaState(Enum):
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"


InfraVerb = Literal["start", "stop", "kill", "restart", "pause", "unpause"]
REPLICA_ACTIONS: tuple[str, ...] = (
    "started", "stopped", "killed", "paused", "resumed",
    "connections_closed", "connections_reset", "in_flight_cancelled",
    "connections_held", "bytes_held", "connections_released", "bytes_released",
)
"""What an infra action on a replica can be seen to do: the keys of InfraRecord.acted.
``connections_closed``/``connections_reset``: client connections open through the replica's
front when a stop closed them gracefully / a kill reset them; ``in_flight_cancelled``:
request and WebSocket tasks a kill cancelled; ``connections_held``/``bytes_held``: counted
on the pause's record *while* it lasts (new connections and bytes, either way, that waited at
the frozen front); ``connections_released``/``bytes_released``: what was still waiting when
the replica was unpaused (or stopped, which unpauses first)."""


@dataclass(eq=False)
class InfraRecord:
    """One infra action on a server replica (``replica`` None: every replica, counts summed)
    and what it changed. ``acted`` of a ``pause`` keeps counting what the frozen replica holds
    until it is unpaused. ``reason`` says why an action changed nothing."""

    action: InfraVerb
    replica: int | None
    acted: Counter[str] = field(default_factory=Counter)
    reason: str = ""

    @property
    def fired(self) -> bool:
        """True once the action changed the replica (its state or its connections)."""
        return any(n > 0 for n in self.acted.values())

    def note(self, what: str, n: int = 1) -> None:
        if what not in REPLICA_ACTIONS:
            raise ValueError(f"acted: unknown replica action {what!r}, expected one of "
                             f"{REPLICA_ACTIONS}")
        if n:
            self.acted[what] += n

    def merge(self, other: InfraRecord) -> None:
        """Add another record's counts (restart = stop + start; several replicas)."""
        for what, n in other.acted.items():
            self.note(what, n)
        if other.reason and not other.fired:
            self.reason = "; ".join(r for r in (self.reason, other.reason) if r)

    def describe(self) -> str:
        """``kill replica 1: killed 1, connections_reset 3`` (or why nothing changed)."""
        which = "every replica" if self.replica is None else f"replica {self.replica}"
        done = ", ".join(f"{k} {n}" for k, n in self.acted.items() if n)
        return f"{self.action} {which}: {done or 'nothing changed'}" + (
            f" ({self.reason})" if self.reason and not done else "")


def assign(seed: int | str, address: str, count: int, pins: Mapping[str, int] | None = None) -> int:
    """The replica a device (``user:device``) connects to first: its pin, else a hash of the
    seed and the address (stable across runs and independent of installation order)."""
    if pins and address in pins:
        return pins[address]
    if count <= 1:
        return 0
    digest = hashlib.sha256(f"{seed}\x00replica\x00{address}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % count


def preference(first: int, count: int) -> list[int]:
    """Failover order from the assigned replica: ``first``, ``first + 1``, ... (cyclic)."""
    return [(first + k) % count for k in range(count)]


class LocalPushBus:
    """The embedded stand-in for Redis pub/sub between in-process replicas."""

    def __init__(self) -> None:
        self.hubs: list[BusPushHub] = []

    def hub(self) -> BusPushHub:
        return BusPushHub(self)


class BusPushHub(PushHub):
    """One replica's hub on a :class:`LocalPushBus`: local sockets get envelopes at once (as
    :class:`PushHub`); a recipient device not connected here is woken on every other live
    replica, whose socket pulls its queue from the shared store (RedisPushHub's semantics)."""

    def __init__(self, bus: LocalPushBus) -> None:
        super().__init__()
        self.bus = bus

    def publish(self, envelopes: Iterable[QueuedEnvelope]) -> None:
        remote: set[tuple[str, str]] = set()
        for env in envelopes:
            key = (env.recipient_user_id, env.recipient_device_id)
            conns = self._connections.get(key)
            if conns:
                for conn in conns:
                    conn.outbox.put_nowait(env)
            else:
                remote.add(key)
        for peer in list(self.bus.hubs):
            if peer is not self:
                for key in sorted(remote):
                    peer.wake_local(*key)

    def disconnect_device(self, user_id: str, device_id: str) -> None:
        for hub in [self, *(h for h in self.bus.hubs if h is not self)]:
            PushHub.disconnect_device(hub, user_id, device_id)

    announces_changes = True

    def user_changed(self, user_id: str) -> None:
        """Every other replica's account cache drops the user (account_cache.py)."""
        for peer in list(self.bus.hubs):
            if peer is not self:
                peer._announce(user_id)

    async def start(self) -> None:
        if self not in self.bus.hubs:
            self.bus.hubs.append(self)

    async def close(self) -> None:
        with contextlib.suppress(ValueError):
            self.bus.hubs.remove(self)


class Replica:
    """One in-process relay replica: ``index``, a fixed port once started, and its state."""

    def __init__(self, index: int, settings: Settings, stores: Stores,
                 push: PushFactory | None = None, **uvicorn_options: Any) -> None:
        self.index = index
        self.settings = settings
        self.stores = stores
        self.push_factory = push
        self.options = uvicorn_options
        self.port = 0
        self.state = ReplicaState.STOPPED
        self.starts = 0
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._sock: socket.socket | None = None
        self._hub: PushPort | None = None
        self._front = _Front(self)

    @property
    def paused(self) -> bool:
        return self.state is ReplicaState.PAUSED

    @property
    def name(self) -> str:
        return f"replica-{self.index}"

    @property
    def address(self) -> tuple[str, int]:
        return (HOST, self.port)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def app(self) -> object:
        assert self._server is not None
        return self._server.config.app

    def _record(self, action: InfraVerb, reason: str = "") -> InfraRecord:
        return InfraRecord(action, self.index, reason=reason)

    async def start(self, timeout: float = 10.0) -> InfraRecord:
        """Serve on this replica's port (a free one the first time). Retries while the port
        is still held by the previous incarnation's closing sockets. A replica that is not
        stopped is not started again (nothing changes)."""
        if self.state is not ReplicaState.STOPPED:
            return self._record("start", f"{self.name} is {self.state.value}, not stopped")
        sock = _bind(0)
        hub = self.push_factory(self.index) if self.push_factory is not None else None
        app = create_app(self.settings, self.stores, hub)
        server = uvicorn.Server(uvicorn_config(app, self.settings, **self.options))
        # _serve, not serve: serve() swaps the process's signal handlers, and N replicas
        # starting and stopping in any order would leave a dead replica's handler installed.
        task = asyncio.create_task(server._serve(sockets=[sock]), name=self.name)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not server.started and not task.done() and loop.time() < deadline:
            await asyncio.sleep(0.01)
        if not server.started:
            server.should_exit = True
            await asyncio.gather(task, return_exceptions=True)
            sock.close()
            raise ReplicaError(f"{self.name} did not start")
        self._server, self._task, self._sock, self._hub = server, task, sock, app.state.relay.hub
        self._front.backend = (HOST, sock.getsockname()[1])
        self.state = ReplicaState.RUNNING
        try:
            self.port = await self._front.open(self.port)
        except OSError:
            await self.stop()
            raise ReplicaError(f"{self.name}: port {self.port} stays busy") from None
        self.starts += 1
        log.info("replica_started", extra={"replica": self.name, "port": self.port})
        record = self._record("start")
        record.note("started")
        return record

    async def stop(self) -> InfraRecord:
        """Graceful shutdown: close frames, in-flight requests finish, shutdown hooks run.
        A paused replica is resumed first (what it held goes through, then it stops)."""
        record = self._record("stop")
        if self.state is ReplicaState.STOPPED:
            record.reason = f"{self.name} is already stopped"
            return record
        server, task = self._server, self._task
        assert server is not None and task is not None
        if self.state is ReplicaState.PAUSED:
            record.note("resumed")
        for what, n in self._front.resume().items():
            record.note(what, n)
        record.note("connections_closed", self._front.open_connections())
        await self._front.close_listener()
        server.should_exit = True
        await asyncio.gather(task, return_exceptions=True)
        await self._front.drain()
        self._closed()
        record.note("stopped")
        return record

    async def kill(self) -> InfraRecord:
        """A crash: the listening socket closes, every connection is reset without a close
        frame, and every request/WebSocket task is cancelled where it stands. (The app's
        shutdown hook then runs so no task outlives the replica in this process: on
        ``local`` it removes this replica's presence keys, which a real crash leaves to
        expire by TTL — other replicas' wake-ups meanwhile are lost either way; the queue
        is not.)"""
        record = self._record("kill")
        if self.state is ReplicaState.STOPPED:
            record.reason = f"{self.name} is already stopped"
            return record
        server, task = self._server, self._task
        assert server is not None and task is not None
        server.force_exit = server.should_exit = True
        await self._front.close_listener()
        record.note("connections_reset", self._front.reset_all())
        for listener in server.servers:
            listener.close()
        if self._sock is not None:
            self._sock.close()
        for conn in list(server.server_state.connections):
            transport = getattr(conn, "transport", None)
            if transport is not None and not transport.is_closing():
                transport.abort()
        for request in list(server.server_state.tasks):
            if request.cancel():
                record.note("in_flight_cancelled")
        task.cancel()
        await asyncio.gather(task, *server.server_state.tasks, return_exceptions=True)
        lifespan = getattr(server, "lifespan", None)
        if lifespan is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(lifespan.shutdown(), 5.0)
        self._closed()
        record.note("killed")
        return record

    def pause(self) -> InfraRecord:
        """SIGSTOP: hold every byte to and from this replica until :meth:`unpause`. The
        record goes on counting what the frozen front holds. Pausing a paused replica
        changes nothing; pausing a stopped one is an error (no process to stop)."""
        if self.state is ReplicaState.STOPPED:
            raise ReplicaError(f"{self.name} is {self.state.value}, not running")
        if self.state is ReplicaState.PAUSED:
            return self._record("pause", f"{self.name} is already paused")
        record = self._record("pause")
        record.note("paused")
        self._front.hold(record)
        self.state = ReplicaState.PAUSED
        log.info("replica_paused", extra={"replica": self.name})
        return record

    def unpause(self) -> InfraRecord:
        """SIGCONT: what was held goes through, in order. Unpausing a running replica
        changes nothing; unpausing a stopped one is an error (no process to continue)."""
        if self.state is ReplicaState.STOPPED:
            raise ReplicaError(f"{self.name} is {self.state.value}, not paused")
        if self.state is ReplicaState.RUNNING:
            return self._record("unpause", f"{self.name} is running, not paused")
        record = self._record("unpause")
        record.note("resumed")
        for what, n in self._front.resume().items():
            record.note(what, n)
        self.state = ReplicaState.RUNNING
        log.info("replica_unpaused", extra={"replica": self.name})
        return record

    def _closed(self) -> None:
        self._front.held_by = None
        if self._sock is not None:
            self._sock.close()
        self._server = self._task = self._sock = self._hub = None
        self.state = ReplicaState.STOPPED
        log.info("replica_stopped", extra={"replica": self.name})


class _Front:
    """The replica's public socket: a byte pipe to the uvicorn socket that a pause freezes.

    Each accepted connection gets its own connection to the backend; every chunk read either
    way waits for the gate before it is written (and so does the end of the stream), so while
    paused nothing moves and TCP back-pressure fills the buffers as it would for a stopped
    process. A graceful stop lets the backend close its side (close frames, EOF), which the
    pipe passes on; a kill resets both sides at once.
    """

    def __init__(self, replica: Replica) -> None:
        self.replica = replica
        self.backend: tuple[str, int] = (HOST, 0)
        self.gate = asyncio.Event()
        self.gate.set()
        self.held_by: InfraRecord | None = None
        """The pause in force: it counts what waits at the gate."""
        self.waiting: Counter[str] = Counter()
        """Connections and bytes waiting at the gate now (released on resume)."""
        self.listener: asyncio.Server | None = None
        self.pipes: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self.tasks: set[asyncio.Task[None]] = set()

    async def open(self, port: int) -> int:
        for _ in range(50):
            try:
                sock = _bind(port)
                break
            except OSError:
                await asyncio.sleep(0.1)  # the previous incarnation's socket is closing
        else:
            raise OSError(f"port {port} stays busy")
        self.gate.set()
        self.listener = await asyncio.start_server(self._accept, sock=sock, backlog=4096,
                                                   limit=2**22)
        return int(sock.getsockname()[1])

    def hold(self, by: InfraRecord) -> None:
        self.held_by = by
        self.gate.clear()

    def resume(self) -> Counter[str]:
        """Open the gate; what was waiting at it (``connections_released``,
        ``bytes_released``), nothing if it was open."""
        released: Counter[str] = Counter()
        if not self.gate.is_set():
            released["connections_released"] = self.waiting["connections"]
            released["bytes_released"] = self.waiting["bytes"]
        self.held_by = None
        self.gate.set()
        return released

    def open_connections(self) -> int:
        """Client connections open through the front (each has its accept task)."""
        return sum(1 for task in self.tasks if not task.done())

    async def _pass_gate(self, what: str, n: int) -> None:
        """Wait for the gate; if it is closed, the pause counts ``n`` held ``what``."""
        if self.gate.is_set():
            return
        if self.held_by is not None and n:
            self.held_by.note(f"{what}_held", n)
        self.waiting[what] += n
        try:
            await self.gate.wait()
        finally:
            self.waiting[what] -= n

    async def close_listener(self) -> None:
        listener, self.listener = self.listener, None
        if listener is not None:
            listener.close()

    def reset_all(self) -> int:
        """Reset every connection through the front; how many client connections were
        still open."""
        open_before = self.open_connections()
        for pair in list(self.pipes):
            for writer in pair:
                if not writer.transport.is_closing():
                    writer.transport.abort()
        for task in list(self.tasks):
            task.cancel()
        return open_before

    async def drain(self, timeout: float = 5.0) -> None:
        """Wait for the pipes to pass the backend's goodbye on (then reset stragglers)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.tasks and loop.time() < deadline:
            await asyncio.sleep(0.01)
        self.reset_all()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        try:
            await self._pass_gate("connections", 1)  # a paused process accepts nothing (the
            # backlog holds it)
            # from the client's own (loopback) address, as a transparent balancer would: the
            # relay keys login throttles and codes by client address (issue 13 F-3, F-4)
            peer = writer.get_extra_info("peername")
            try:
                up_r, up_w = await asyncio.open_connection(
                    *self.backend, limit=2**22,
                    local_addr=(peer[0], 0) if peer and peer[0] != HOST else None)
            except OSError:
                writer.transport.abort()
                return
            pair = (writer, up_w)
            self.pipes.add(pair)
            try:
                await asyncio.gather(self._pipe(reader, up_w), self._pipe(up_r, writer))
            except (ConnectionError, OSError):
                pass
            finally:
                self.pipes.discard(pair)
                for w in pair:
                    if not w.transport.is_closing():
                        w.transport.abort()
        except asyncio.CancelledError:
            writer.transport.abort()
        finally:
            self.tasks.discard(task)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        while True:
            data = await src.read(65536)
            await self._pass_gate("bytes", len(data))
            if not data:
                with contextlib.suppress(OSError):
                    if dst.can_write_eof():
                        dst.write_eof()
                return
            dst.write(data)
            await dst.drain()


def _bind(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port))
    except OSError:
        sock.close()
        raise
    return sock


__all__ = ["REPLICA_ACTIONS", "BusPushHub", "InfraRecord", "InfraVerb", "LocalPushBus",
           "PushFactory", "Replica", "ReplicaError", "ReplicaState", "assign", "preference"]
