"""``semafore serve --workers N``: N relay processes behind one port, on shared real backends
(issue 16 item 3: a relay on every core; seed §3.4: horizontally scaled replicas sharing
state in MongoDB and Redis, docs/capacity.md "serve --workers").

One Python process runs the relay on one core (the event loop, JSON, the token checks are
all on one thread), so a relay on a 2-core machine used half of it. A :class:`WorkerPool`
is the parent: it reserves the port, starts ``count`` worker processes and supervises them.

- **One port, the kernel balances** (``balancer="kernel"``, the default; with
  ``balancer="haproxy"`` Debian's HAProxy holds the port instead and spreads connections over
  workers on loopback ports of their own: semafore/deploy/balancer.py says when that is
  better). Kernel: every worker binds its *own* listening socket on the same address with
  ``SO_REUSEPORT``; Linux hashes each new connection's 4-tuple onto one
  of the listening sockets, so connections spread evenly without a proxy. The parent holds
  a bound, never-listening ``SO_REUSEPORT`` socket on the port from the start (so
  ``--port 0`` resolves to one port for every worker, and no other program can take it
  while a worker restarts); a socket that does not listen is never handed connections.
- **Shared state, cross-process push.** Workers open the same ``backend_stores`` namespace
  and each runs a ``RedisPushHub``: a message sent through worker A to a device whose
  WebSocket is held by worker B reaches it by push, in real time (semafore/server/push.py).
  Embedded stores (memory, SQLite) cannot do this: memory is per process, and a SQLite file
  has no cross-process push hub, so the CLI refuses ``--workers`` > 1 with them.
- **The same secrets everywhere.** The parent builds one :class:`Settings` (JWT and TOTP
  sealing keys derived from one relay key) and hands it to every worker, restarted ones
  included, so a token issued by one worker is honoured by all (issue 13 F-11, F-14).
- **Which worker answered.** Every HTTP response of a worker carries
  ``x-semafore-worker: <pid>`` (:data:`WORKER_HEADER`), for operators checking the spread
  and for the tests that prove both workers serve the one port.
- **Stopping.** Workers run in their own process group, so a terminal's Ctrl-C reaches only
  the parent, which sends each worker exactly one SIGTERM (uvicorn takes a second signal as
  "exit now, skip the graceful shutdown"); a worker still running after ``stop_timeout``
  is killed. Workers also get SIGTERM if the parent dies (``PR_SET_PDEATHSIG``).
- **A worker that dies is restarted** on the same port with the same settings, at most
  ``max_restarts`` times within ``restart_window`` seconds; beyond that budget
  :meth:`WorkerPool.supervise` raises :class:`WorkerError` (the CLI then stops the others
  and exits 1, for a service manager to act on: a crash loop is not hidden).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import multiprocessing
import os
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.context import SpawnProcess
from typing import Any

import uvicorn

from semafore.deploy.balancer import (
    BALANCERS,
    BalancerError,
    HaproxyBalancer,
    haproxy_binary,
    terminate_with_parent,
)
from semafore.deploy.errors import InfraError, SettingsError
from semafore.deploy.providers import Endpoints
from semafore.deploy.stores import backend_stores
from semafore.server.app import create_app
from semafore.server.oplog import configure_logging, event
from semafore.server.serving import uvicorn_config
from semafore.server.settings import Settings

WORKER_HEADER = "x-semafore-worker"
"""Response header naming the pid of the worker process that answered."""

MAX_WORKERS = 64
"""Upper bound of ``count``: a bounded number of processes, whatever the caller asks."""


class WorkerError(InfraError):
    """A worker failed to start, or died more often than the restart budget allows;
    ``index`` names the worker, ``reason`` what happened (its exit code or its last error)."""

    def __init__(self, index: int, reason: str) -> None:
        super().__init__(f"worker {index}: {reason}")
        self.index = index
        self.reason = reason


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker process needs, pickled to it at spawn (so no secret goes through
    argv or the environment): the relay's settings, the shared backends and where to listen."""

    settings: Settings
    endpoints: Endpoints
    namespace: str
    host: str
    port: int
    log_level: int = logging.INFO
    shutdown_grace: float = 10.0
    """Seconds a worker's graceful shutdown may take before it exits anyway: a shutdown that
    waits on backends that are gone (Redis, MongoDB unreachable) must not keep the process,
    and its port, alive, least of all when the parent that would SIGKILL it is dead."""


def reuseport_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` with ``SO_REUSEPORT`` (0: a port the kernel picks).

    Raises ``OSError`` when the address is taken by a socket without ``SO_REUSEPORT`` or by
    another user's."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _listening(host: str, port: int) -> socket.socket:
    """The proxy's public socket, bound and listening (HAProxy inherits it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(1024)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


class WorkerHeader:
    """ASGI wrapper: every HTTP response carries :data:`WORKER_HEADER` with this process's
    pid. WebSocket and lifespan scopes pass through untouched."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.value = str(os.getpid()).encode()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_header(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                headers.append((WORKER_HEADER.encode(), self.value))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_header)


class _Worker:
    """One worker slot: its index and address stay, its process changes on restart."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.host = ""
        self.port = 0
        self.process: SpawnProcess | None = None
        self.restarts: deque[float] = deque()

    @property
    def pid(self) -> int:
        assert self.process is not None and self.process.pid is not None
        return self.process.pid


class WorkerPool:
    """``count`` relay worker processes serving ``spec.host:spec.port`` (see module doc)."""

    def __init__(
        self,
        spec: WorkerSpec,
        count: int,
        *,
        max_restarts: int = 3,
        restart_window: float = 60.0,
        startup_timeout: float = 60.0,
        stop_timeout: float = 15.0,
        balancer: str = "kernel",
    ) -> None:
        if balancer not in BALANCERS:
            raise SettingsError("balancer", f"one of {', '.join(BALANCERS)}, not {balancer!r}")
        if not 1 <= count <= MAX_WORKERS:
            raise SettingsError("workers", f"between 1 and {MAX_WORKERS}, not {count}")
        if spec.endpoints.embedded:
            raise SettingsError("workers", "worker processes need shared backends, not "
                                "embedded stores")
        if balancer == "haproxy":
            haproxy_binary()  # refused now, naming the option, not after the workers started
        if max_restarts < 0:
            raise SettingsError("max_restarts", "0 or more")
        self.spec = spec
        self.max_restarts = max_restarts
        self.restart_window = restart_window
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.workers = [_Worker(i) for i in range(count)]
        self._context = multiprocessing.get_context("spawn")
        self.balancer_kind = balancer
        self.balancer: HaproxyBalancer | None = None
        self._sockets: list[socket.socket] = []  # reservations and the proxy's listener
        self._wake_r, self._wake_w = socket.socketpair()
        self._stopping = False
        self.port = spec.port

    @property
    def pids(self) -> list[int]:
        """The current worker pids, by worker index."""
        return [w.pid for w in self.workers]

    @property
    def url(self) -> str:
        host = self.spec.host
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    def start(self) -> WorkerPool:
        """Reserve the port, start every worker (and the balancer) and return once all
        serve. Raises ``OSError`` if the port is taken, :class:`WorkerError` if a worker
        fails, :class:`BalancerError` if HAProxy does."""
        try:
            if self.balancer_kind == "kernel":
                reservation = reuseport_socket(self.spec.host, self.spec.port)
                self._sockets.append(reservation)
                self.port = int(reservation.getsockname()[1])
                for worker in self.workers:  # all on the one port
                    worker.host, worker.port = self.spec.host, self.port
            else:
                public = _listening(self.spec.host, self.spec.port)
                self._sockets.append(public)
                self.port = int(public.getsockname()[1])
                for worker in self.workers:  # each on a loopback port of its own
                    reservation = reuseport_socket("127.0.0.1", 0)
                    self._sockets.append(reservation)
                    worker.host, worker.port = "127.0.0.1", int(reservation.getsockname()[1])
            pending = [(w, self._spawn(w)) for w in self.workers]
            for worker, ready in pending:
                self._await_ready(worker, ready)
            if self.balancer_kind == "haproxy":
                self.balancer = HaproxyBalancer(
                    self._sockets[0].fileno(), [(w.host, w.port) for w in self.workers]
                )
                self.balancer.start()
        except BaseException:
            self.stop()
            raise
        return self

    def request_stop(self) -> None:
        """Make :meth:`supervise` return (safe to call from a signal handler)."""
        self._stopping = True
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def supervise(self, on_restart: Callable[[int, int, int], None] | None = None) -> None:
        """Block until :meth:`request_stop`; restart each worker that exits meanwhile
        (``on_restart(index, old_pid, new_pid)`` after it serves again). Raises
        :class:`WorkerError` when one worker exceeds its restart budget, and
        :class:`BalancerError` when HAProxy exits (its clients lost their way in)."""
        while not self._stopping:
            sentinels: dict[int, _Worker] = {}
            for worker in self.workers:
                assert worker.process is not None
                sentinels[worker.process.sentinel] = worker
            watched = [*sentinels, self._wake_r.fileno()]
            if self.balancer is not None and self.balancer.pidfd is not None:
                watched.append(self.balancer.pidfd)
            for fd in wait(watched):
                if self._stopping:
                    break
                if self.balancer is not None and fd == self.balancer.pidfd:
                    raise BalancerError(self.balancer.exit_reason())
                if fd in sentinels:
                    self._restart(sentinels[fd], on_restart)

    def stop(self) -> None:
        """Stop the balancer, then SIGTERM every worker once, wait up to ``stop_timeout``,
        SIGKILL what is left."""
        self._stopping = True
        if self.balancer is not None:
            self.balancer.stop(self.stop_timeout)
        running = [w.process for w in self.workers if w.process is not None]
        for process in running:
            if process.is_alive() and process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        for process in running:
            process.join(max(0.0, deadline - time.monotonic()))
        for process in running:
            if process.is_alive():
                process.kill()
                process.join(5)
        for sock in self._sockets:
            sock.close()
        self._sockets = []

    def close(self) -> None:
        """Release the pool's own descriptors (after :meth:`stop`)."""
        self._wake_r.close()
        self._wake_w.close()

    def __enter__(self) -> WorkerPool:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self.close()

    # --- internals ------------------------------------------------------------------------

    def _spawn(self, worker: _Worker) -> Connection:
        parent_end, child_end = self._context.Pipe(duplex=False)
        spec = dataclasses.replace(self.spec, host=worker.host, port=worker.port)
        process = self._context.Process(
            target=run_worker,
            args=(spec, worker.index, child_end),
            name=f"semafore-worker-{worker.index}",
            daemon=False,
        )
        process.start()
        child_end.close()  # the parent keeps only its end: EOF if the worker dies early
        worker.process = process
        return parent_end

    def _await_ready(self, worker: _Worker, ready: Connection) -> None:
        try:
            if not ready.poll(self.startup_timeout):
                raise WorkerError(worker.index, f"not serving within {self.startup_timeout:g} s")
            try:
                kind, detail = ready.recv()
            except EOFError:
                assert worker.process is not None
                worker.process.join(5)
                raise WorkerError(worker.index, f"exited with code {worker.process.exitcode} "
                                  "before serving") from None
            if kind != "ready":
                raise WorkerError(worker.index, f"failed to start: {detail}")
        finally:
            ready.close()

    def _restart(self, worker: _Worker, on_restart: Callable[[int, int, int], None] | None
                 ) -> None:
        assert worker.process is not None
        old_pid = worker.pid
        worker.process.join(5)
        code = worker.process.exitcode
        now = time.monotonic()
        while worker.restarts and now - worker.restarts[0] > self.restart_window:
            worker.restarts.popleft()
        if len(worker.restarts) >= self.max_restarts:
            raise WorkerError(worker.index, f"pid {old_pid} exited with code {code}; "
                              f"{len(worker.restarts)} restarts within "
                              f"{self.restart_window:g} s already, giving up")
        worker.restarts.append(now)
        self._await_ready(worker, self._spawn(worker))
        if on_restart is not None:
            on_restart(worker.index, old_pid, worker.pid)


# --- the worker process -------------------------------------------------------------------


def run_worker(spec: WorkerSpec, index: int, ready: Connection) -> None:
    """A worker's entry point (spawned by :class:`WorkerPool`): serve until SIGTERM.

    Reports ``("ready", pid)`` on ``ready`` once uvicorn serves, or ``("failed", reason)``."""
    os.setpgid(0, 0)  # out of the terminal's process group: Ctrl-C is the parent's to relay
    terminate_with_parent()
    # uvicorn re-raises the signal it stopped on once its graceful shutdown is done; with a
    # handler in place the worker then closes its backend clients and exits 0.
    signal.signal(signal.SIGTERM, lambda *_: None)
    configure_logging(sys.stderr, spec.log_level, spec.settings.log_hash)
    try:
        asyncio.run(_serve(spec, index, ready))
    except Exception as exc:
        with contextlib.suppress(OSError, ValueError):
            ready.send(("failed", f"{type(exc).__name__}: {exc}"))
        raise


async def _serve(spec: WorkerSpec, index: int, ready: Connection) -> None:
    stores, handles = await backend_stores(spec.endpoints, spec.namespace)
    watchdog: asyncio.Task[None] | None = None
    try:
        push = handles.push_hub(f"worker-{index}-{os.getpid()}")
        app = WorkerHeader(create_app(spec.settings, stores, push))
        server = uvicorn.Server(uvicorn_config(app, spec.settings))
        sock = reuseport_socket(spec.host, spec.port)
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        watchdog = asyncio.create_task(_exit_if_stuck(server, spec.shutdown_grace))
        while not server.started and not serving.done():
            await asyncio.sleep(0.02)
        if server.started:
            ready.send(("ready", os.getpid()))
            ready.close()
        try:
            await serving
        finally:
            sock.close()
        if not server.started:
            raise WorkerError(index, "uvicorn stopped before serving")
    finally:
        await handles.close()  # still under the watchdog: the backends may be gone
        if watchdog is not None:
            watchdog.cancel()


async def _exit_if_stuck(server: Any, grace: float) -> None:
    """Once uvicorn was told to stop, give the shutdown (and closing the backend clients)
    ``grace`` seconds, then end the process with exit code 1."""
    while not server.should_exit:
        await asyncio.sleep(0.1)
    await asyncio.sleep(grace)
    event("worker_shutdown_stuck", logging.ERROR, grace_s=grace)
    os._exit(1)
