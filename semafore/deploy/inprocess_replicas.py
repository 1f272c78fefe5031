"""Relay replicas in this event loop on one set of stores (seed §3.4: horizontally scaled
application tier sharing state in MongoDB and Redis), under the faults a scenario injects.

Every replica is a real relay (its own ASGI app, uvicorn server, listening socket and push hub)
on the *same* stores: the in-memory store objects on ``embedded``, the same MongoDB, Redis and
SeaweedFS elsewhere. Push crosses replicas the way it does in production: on real backends
each replica has its own ``RedisPushHub`` (:mod:`semafore.deploy.redis_push`); on
``embedded`` each has a ``BusPushHub`` on one ``LocalPushBus``
(:mod:`semafore.deploy.local_push`). Replica *processes* on real backends are
:mod:`semafore.deploy.replicas`; this module is the in-process kind, whose faults a scenario
can aim at one replica without a process boundary.

Faults (scenario ``infra`` steps on ``target: server``, docs/simulator.md):

- ``stop``: graceful — the server stops accepting, closes its WebSockets (close frame 1012),
  finishes in-flight requests, runs its shutdown hooks;
- ``kill``: a crash — the listening socket closes, every connection is reset (no close frame),
  every in-flight request task is cancelled where it stands;
- ``pause``/``unpause``: a SIGSTOP, through the replica's front
  (:class:`semafore.deploy.replica_front.PausableFront`);
- ``start``/``restart``: a fresh relay (new app, empty in-memory state) on the same port and
  stores with the same settings, so tokens signed before still verify.

Each action returns an :class:`~semafore.deploy.replica_record.InfraRecord` of what it
changed (issue #11, "faults prove they fired"): a stop of a stopped replica or an unpause of
a running one changes nothing and says so (zero counts and a reason) instead of raising;
pausing or unpausing a replica that is not running at all is an error (there is no process to
signal).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from enum import Enum

import uvicorn

from semafore.deploy.errors import FaultError, RelayStartError
from semafore.deploy.inprocess import start_in_loop
from semafore.deploy.listener import LOOPBACK as HOST
from semafore.deploy.listener import bind_loopback
from semafore.deploy.replica_front import PausableFront
from semafore.deploy.replica_record import InfraRecord, InfraVerb
from semafore.server.app import create_app
from semafore.server.push import PushPort
from semafore.server.settings import Settings
from semafore.storage.ports import Stores

log = logging.getLogger(__name__)

PushFactory = Callable[[int], PushPort]
"""Replica index -> that replica's push hub."""


class ReplicaError(FaultError):
    """A replica cannot do what was asked (start a running one, pause a stopped one...)."""


class ReplicaState(Enum):
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"


class InProcessReplica:
    """One in-process relay replica: ``index``, a fixed port once started, and its state.

    ``async with InProcessReplica(...) as running:`` starts it and stops it gracefully."""

    def __init__(self, index: int, settings: Settings, stores: Stores,
                 push: PushFactory | None = None) -> None:
        self.index = index
        self.settings = settings
        self.stores = stores
        self.push_factory = push
        self.port = 0
        self.state = ReplicaState.STOPPED
        self.starts = 0
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._sock: socket.socket | None = None
        self._hub: PushPort | None = None
        self._front = PausableFront()

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
        sock = bind_loopback(0)
        hub = self.push_factory(self.index) if self.push_factory is not None else None
        app = create_app(self.settings, self.stores, hub)
        try:
            server, task = await start_in_loop(app, sock, name=self.name, timeout=timeout)
        except RelayStartError as exc:
            sock.close()
            raise ReplicaError(f"{self.name} did not start") from exc
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

    async def __aenter__(self) -> InProcessReplica:
        record = await self.start()
        if not record.fired:
            raise ReplicaError(record.describe())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
