"""An asyncio TCP proxy that sits between a client (the relay) and a backend and breaks the
link on command: added latency, dropped bytes, cut connections, half-open links, refused
connections — all switchable at runtime while traffic flows (issue 4, "Deployment shapes
and faults").

Each accepted connection gets one pump per direction. A pump reads a chunk, stamps it, and
hands it to a writer that releases it ``latency`` seconds after it was read, so latency
delays bytes without throttling throughput (as a long link would). The faults:

- ``latency``  seconds added to every chunk, per direction.
- ``drop``     chunks read in that direction are discarded; the connection stays up
               (a black hole: the peer waits for an answer that never comes).
- ``half_open`` the proxy stops reading in that direction; bytes stay in kernel buffers and
               flow again on :meth:`FaultProxy.heal` — nothing is closed, nothing is lost.
- ``cut``      every open connection is aborted (RST) now.
- ``refuse``   new connections are accepted and immediately closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from semafore.deploy.providers import Endpoints

log = logging.getLogger(__name__)

T = TypeVar("T")

CHUNK = 65536


class Direction(Enum):
    UPSTREAM = "upstream"  # client -> backend
    DOWNSTREAM = "downstream"  # backend -> client
    BOTH = "both"

    def covers(self, other: Direction) -> bool:
        return self is Direction.BOTH or self is other


@dataclass
class _Flow:
    """Fault state of one direction."""

    latency: float = 0.0
    drop: bool = False
    flowing: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.flowing.set()


@dataclass
class ProxyStats:
    accepted: int = 0
    refused: int = 0
    cut: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    dropped_up: int = 0
    dropped_down: int = 0


class FaultProxy:
    """A TCP proxy to ``target`` listening on ``listen_host:listen_port`` (0 = any free port).

    Use inside a running event loop: ``await proxy.start()`` … ``await proxy.close()``, or
    ``async with FaultProxy(...)``. Fault switches are plain methods, safe to call any time from
    the loop's thread; from other threads use :class:`ThreadedFaultProxy`.
    """

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
        connect_timeout: float = 5.0,
    ) -> None:
        self.target = (target_host, target_port)
        self._listen = (listen_host, listen_port)
        self.connect_timeout = connect_timeout
        self._server: asyncio.Server | None = None
        self._flows = {Direction.UPSTREAM: _Flow(), Direction.DOWNSTREAM: _Flow()}
        self._refuse = False
        self._connections: set[_Connection] = set()
        self.stats = ProxyStats()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("proxy not started")
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def host(self) -> str:
        return self._listen[0]

    @property
    def active_connections(self) -> int:
        return len(self._connections)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, *self._listen)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self.cut()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> FaultProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- fault switches ---------------------------------------------------------------------

    def set_latency(self, seconds: float, direction: Direction = Direction.BOTH) -> None:
        if seconds < 0:
            raise ValueError("latency: must be >= 0")
        for d, flow in self._flows.items():
            if direction.covers(d):
                flow.latency = seconds

    def drop(self, direction: Direction = Direction.BOTH, on: bool = True) -> None:
        for d, flow in self._flows.items():
            if direction.covers(d):
                flow.drop = on

    def half_open(self, direction: Direction = Direction.DOWNSTREAM) -> None:
        """Stop forwarding ``direction`` without closing anything."""
        for d, flow in self._flows.items():
            if direction.covers(d):
                flow.flowing.clear()

    def refuse(self, on: bool = True) -> None:
        self._refuse = on

    def cut(self) -> int:
        """Abort every open connection (both sockets, RST); return how many."""
        connections = list(self._connections)
        for connection in connections:
            connection.abort()
        self.stats.cut += len(connections)
        return len(connections)

    def heal(self) -> None:
        """Clear every fault: no latency, no drop, forwarding in both directions, accepting."""
        for flow in self._flows.values():
            flow.latency = 0.0
            flow.drop = False
            flow.flowing.set()
        self._refuse = False

    # -- plumbing ---------------------------------------------------------------------------

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        if self._refuse:
            self.stats.refused += 1
            client_w.transport.abort()
            return
        try:
            backend_r, backend_w = await asyncio.wait_for(
                asyncio.open_connection(*self.target), self.connect_timeout
            )
        except (OSError, TimeoutError):
            client_w.transport.abort()
            return
        self.stats.accepted += 1
        connection = _Connection(self, client_r, client_w, backend_r, backend_w)
        self._connections.add(connection)
        try:
            await connection.run()
        finally:
            self._connections.discard(connection)


class _Connection:
    def __init__(
        self,
        proxy: FaultProxy,
        client_r: asyncio.StreamReader,
        client_w: asyncio.StreamWriter,
        backend_r: asyncio.StreamReader,
        backend_w: asyncio.StreamWriter,
    ) -> None:
        self.proxy = proxy
        self.client_w = client_w
        self.backend_w = backend_w
        self._legs = (
            (Direction.UPSTREAM, client_r, backend_w),
            (Direction.DOWNSTREAM, backend_r, client_w),
        )
        self._tasks: list[asyncio.Task[None]] = []

    async def run(self) -> None:
        for direction, reader, writer in self._legs:
            queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()
            self._tasks.append(asyncio.create_task(self._read(direction, reader, queue)))
            self._tasks.append(asyncio.create_task(self._write(direction, writer, queue)))
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self.abort()

    def abort(self) -> None:
        for writer in (self.client_w, self.backend_w):
            writer.transport.abort()
        for task in self._tasks:
            task.cancel()

    async def _read(
        self,
        direction: Direction,
        reader: asyncio.StreamReader,
        queue: asyncio.Queue[tuple[float, bytes] | None],
    ) -> None:
        flow = self.proxy._flows[direction]
        stats = self.proxy.stats
        try:
            while True:
                await flow.flowing.wait()  # half-open: leave the bytes in the kernel
                data = await reader.read(CHUNK)
                if not data:
                    break
                if flow.drop:
                    if direction is Direction.UPSTREAM:
                        stats.dropped_up += len(data)
                    else:
                        stats.dropped_down += len(data)
                    continue
                await queue.put((time.monotonic() + flow.latency, data))
        except (ConnectionError, OSError):
            pass
        finally:
            await queue.put(None)

    async def _write(
        self,
        direction: Direction,
        writer: asyncio.StreamWriter,
        queue: asyncio.Queue[tuple[float, bytes] | None],
    ) -> None:
        flow = self.proxy._flows[direction]
        stats = self.proxy.stats
        try:
            while (item := await queue.get()) is not None:
                due, data = item
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                await flow.flowing.wait()
                writer.write(data)
                await writer.drain()
                if direction is Direction.UPSTREAM:
                    stats.bytes_up += len(data)
                else:
                    stats.bytes_down += len(data)
            if writer.can_write_eof():
                writer.write_eof()  # propagate a half-close (FIN) to the other side
        except (ConnectionError, OSError):
            self.abort()


class ThreadedFaultProxy:
    """A :class:`FaultProxy` running in its own thread and event loop, for synchronous code
    (pytest fixtures, the sync parts of the simulator). Every switch is forwarded safely."""

    def __init__(self, target_host: str, target_port: int, **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="fault-proxy", daemon=True
        )
        self.proxy = FaultProxy(target_host, target_port, **options)

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)

    def _do(self, fn: Any, *args: Any) -> Any:
        async def run() -> Any:
            return fn(*args)

        return self._call(run())

    def start(self) -> ThreadedFaultProxy:
        self._thread.start()
        self._call(self.proxy.start())
        return self

    def close(self) -> None:
        if self._thread.is_alive():
            self._call(self.proxy.close())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> ThreadedFaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def port(self) -> int:
        return self.proxy.port

    @property
    def stats(self) -> ProxyStats:
        return self.proxy.stats

    def set_latency(self, seconds: float, direction: Direction = Direction.BOTH) -> None:
        self._do(self.proxy.set_latency, seconds, direction)

    def drop(self, direction: Direction = Direction.BOTH, on: bool = True) -> None:
        self._do(self.proxy.drop, direction, on)

    def half_open(self, direction: Direction = Direction.DOWNSTREAM) -> None:
        self._do(self.proxy.half_open, direction)

    def refuse(self, on: bool = True) -> None:
        self._do(self.proxy.refuse, on)

    def cut(self) -> int:
        return int(self._do(self.proxy.cut))

    def heal(self) -> None:
        self._do(self.proxy.heal)


class BackendLinks:
    """One :class:`ThreadedFaultProxy` in front of each backend of ``endpoints``:
    ``links.endpoints`` points through the proxies, ``links["redis"]`` breaks that link.

    Give ``links.endpoints`` (or ``links.endpoints.as_env()``) to the server — replicas
    included — and the simulator can cut, delay or half-open the server's path to one backend
    while the backend itself keeps running.
    """

    def __init__(self, endpoints: Endpoints) -> None:
        self.direct = endpoints
        self.proxies: dict[str, ThreadedFaultProxy] = {}
        self.endpoints = endpoints

    def __getitem__(self, backend: str) -> ThreadedFaultProxy:
        return self.proxies[backend]

    def start(self) -> BackendLinks:
        rewritten: dict[str, str] = {}
        try:
            for backend, attr in (
                ("mongodb", "mongodb_url"),
                ("redis", "redis_url"),
                ("seaweedfs", "seaweedfs_filer_url"),
                ("seaweedfs_s3", "seaweedfs_s3_url"),
            ):
                url = getattr(self.direct, attr)
                if not url:
                    continue
                parts = urlsplit(url)
                proxy = ThreadedFaultProxy(parts.hostname or "127.0.0.1", parts.port or 0)
                self.proxies[backend] = proxy.start()
                rewritten[attr] = parts._replace(netloc=f"127.0.0.1:{proxy.port}").geturl()
        except BaseException:
            self.close()
            raise
        d = self.direct
        self.endpoints = dataclasses.replace(
            d,
            mongodb_url=rewritten.get("mongodb_url", d.mongodb_url),
            redis_url=rewritten.get("redis_url", d.redis_url),
            seaweedfs_filer_url=rewritten.get("seaweedfs_filer_url", d.seaweedfs_filer_url),
            seaweedfs_s3_url=rewritten.get("seaweedfs_s3_url", d.seaweedfs_s3_url),
        )
        return self

    def heal(self) -> None:
        for proxy in self.proxies.values():
            proxy.heal()

    def close(self) -> None:
        for proxy in self.proxies.values():
            proxy.close()
        self.proxies.clear()

    def __enter__(self) -> BackendLinks:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
