"""The network between simulated clients and the relay: a WebSocket-aware proxy per device.

Every device talks to the relay through its own :class:`DeviceLink` (a loopback listener),
all owned by one :class:`Network`. The link relays bytes both ways and

- **captures** what crosses the wire (the network adversary's view, seed §1.1): HTTP bytes
  as sent, WebSocket payloads unmasked, each with its time, device and direction;
- **breaks** it on command (scenario ``network`` steps): ``drop``, ``delay`` (+ jitter),
  ``duplicate`` and ``reorder`` act on *envelope frames* of the device WebSocket — an
  ``envelope`` pushed down to the device, a ``send`` pushed up to the relay — so a fault hits
  one envelope, never half of one; ``cut`` aborts the scope's connections (HTTP and WebSocket)
  and refuses new ones until ``heal``;
- **routes** each new connection (optional :attr:`Network.route`): the device's relay replicas
  in its order of preference, the first that accepts wins (a client holding the replica list
  and failing over, seed §3.4; simulator/replicas.py).

Faults are drawn from the scenario seed: each device has its own RNG stream, so which
envelope a 30 % drop hits does not depend on how the event loop interleaved other devices.

The capture is stronger than a real in-path observer, who sees TLS records only: here the
adversary reads the HTTP/WebSocket application bytes, so "finds no plaintext in the capture"
is a statement about the E2E layer alone, not about TLS.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import heapq
import logging
import random
import socket
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

log = logging.getLogger(__name__)

Direction = Literal["up", "down"]
FaultKind = Literal["drop", "delay", "duplicate", "reorder", "cut"]
REORDER_FLUSH_S = 0.25
"""Held frames of a reorder window are released after this idle time (never stranded)."""


@dataclass
class Captured:
    """One unit of wire traffic: an HTTP chunk or one WebSocket message payload."""

    at: float
    device: str
    direction: Direction
    channel: Literal["http", "ws"]
    data: bytes


@dataclass
class Rule:
    """One active fault. ``count`` is how many more envelopes it may affect (None = no limit)."""

    kind: FaultKind
    directions: frozenset[Direction]
    probability: float = 1.0
    count: int | None = None
    delay_s: float = 0.0
    jitter_s: float = 0.0
    window: int = 2

    def applies(self, direction: Direction) -> bool:
        return direction in self.directions and (self.count is None or self.count > 0)


@dataclass
class LinkStats:
    connections: int = 0
    refused: int = 0
    frames_up: int = 0
    frames_down: int = 0
    dropped: int = 0
    duplicated: int = 0
    delayed: int = 0
    reordered: int = 0
    cut: int = 0


def _directions(direction: str) -> frozenset[Direction]:
    if direction == "both":
        return frozenset({"up", "down"})
    if direction in ("up", "down"):
        return frozenset({direction})  # type: ignore[arg-type]
    raise ValueError(f"direction must be up, down or both, got {direction!r}")


class Network:
    """All device links, the shared capture and the global fault rules."""

    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        *,
        seed: int | str = 0,
        capture: bool = True,
        clock: Callable[[], float] = time.monotonic,
        reorder_flush_s: float = REORDER_FLUSH_S,
    ) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.seed = str(seed)
        self.capture_enabled = capture
        self.clock = clock
        self.captured: list[Captured] = []
        self.links: dict[str, DeviceLink] = {}
        self.global_rules: list[Rule] = []
        self.global_cut = False
        self.reorder_flush_s = reorder_flush_s
        self.route: Callable[[str], Sequence[tuple[str, int]]] | None = None
        """The relay addresses a device tries, in order (replicas); None: ``upstream``."""

    def retarget(self, host: str, port: int) -> None:
        """Point every link at a new relay address (a restarted relay on another port)."""
        self.upstream = (host, port)

    def rng_for(self, device: str) -> random.Random:
        digest = hashlib.sha256(f"{self.seed}\x00net\x00{device}".encode()).digest()
        return random.Random(int.from_bytes(digest[:8], "big"))

    async def link(self, device: str) -> DeviceLink:
        """The device's link (created and listening on first use)."""
        existing = self.links.get(device)
        if existing is not None:
            return existing
        link = DeviceLink(self, device)
        await link.start()
        self.links[device] = link
        return link

    def record(self, device: str, direction: Direction, channel: Literal["http", "ws"],
               data: bytes) -> None:
        if self.capture_enabled and data:
            self.captured.append(Captured(self.clock(), device, direction, channel, data))

    # -- fault control ---------------------------------------------------------------------

    def add_fault(
        self,
        kind: FaultKind,
        *,
        device: str | None = None,
        direction: str = "both",
        probability: float = 1.0,
        count: int | None = None,
        delay_ms: float = 0.0,
        jitter_ms: float = 0.0,
        window: int = 2,
    ) -> None:
        """Install a fault on one device (``device``) or on every device (None)."""
        if not 0.0 <= probability <= 1.0:
            raise ValueError("probability must be within [0, 1]")
        if kind == "cut":
            if device is None:
                self.global_cut = True
                for link in self.links.values():
                    link.abort_all()
            else:
                target = self.links.get(device)
                if target is not None:
                    target.cut = True
                    target.abort_all()
            return
        rule = Rule(kind, _directions(direction), probability, count, delay_ms / 1000.0,
                    jitter_ms / 1000.0, max(2, window))
        if device is None:
            self.global_rules.append(rule)
        else:
            self.links[device].rules.append(rule)

    def heal(self, device: str | None = None) -> None:
        """Remove every fault on the scope (the whole network when ``device`` is None)."""
        if device is None:
            self.global_rules.clear()
            self.global_cut = False
            for link in self.links.values():
                link.rules.clear()
                link.cut = False
                link.flush_held()
        else:
            target = self.links.get(device)
            if target is not None:
                target.rules.clear()
                target.cut = False
                target.flush_held()

    def totals(self) -> LinkStats:
        total = LinkStats()
        for link in self.links.values():
            for name in vars(total):
                setattr(total, name, getattr(total, name) + getattr(link.stats, name))
        return total

    def wire_bytes(self) -> int:
        return sum(len(c.data) for c in self.captured)

    async def close(self) -> None:
        for link in list(self.links.values()):
            await link.close()
        self.links.clear()


class _Pump:
    """Ordered release of frames in one direction: a heap keyed by release time."""

    def __init__(self, writer: asyncio.StreamWriter, clock: Callable[[], float]) -> None:
        self.writer = writer
        self.heap: list[tuple[float, int, bytes]] = []
        self.seq = 0
        self.wake = asyncio.Event()
        self.clock = clock
        self.closed = False
        self.task = asyncio.create_task(self._run())

    def put(self, data: bytes, delay: float = 0.0) -> None:
        if self.closed:
            return
        if delay <= 0 and not self.heap:
            self.writer.write(data)
            return
        self.seq += 1
        heapq.heappush(self.heap, (time.monotonic() + delay, self.seq, data))
        self.wake.set()

    async def _run(self) -> None:
        while True:
            if not self.heap:
                self.wake.clear()
                await self.wake.wait()
                continue
            release, _, data = self.heap[0]
            wait = release - time.monotonic()
            if wait > 0:
                self.wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), wait)
                continue
            heapq.heappop(self.heap)
            if not self.closed:
                self.writer.write(data)
                with contextlib.suppress(ConnectionError):
                    await self.writer.drain()

    async def close(self) -> None:
        self.closed = True
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


class _Connection:
    def __init__(self, link: DeviceLink, client_w: asyncio.StreamWriter,
                 upstream_w: asyncio.StreamWriter) -> None:
        self.link = link
        self.client_w = client_w
        self.upstream_w = upstream_w
        self.tasks: list[asyncio.Task[None]] = []

    def abort(self) -> None:
        for w in (self.client_w, self.upstream_w):
            transport = w.transport
            if transport is not None and not transport.is_closing():
                transport.abort()


class DeviceLink:
    """The proxy in front of one device: ``url`` is what the device's client connects to."""

    def __init__(self, network: Network, device: str) -> None:
        self.network = network
        self.device = device
        self.rules: list[Rule] = []
        self.cut = False
        self.stats = LinkStats()
        self.rng = network.rng_for(device)
        self.server: asyncio.Server | None = None
        self.port = 0
        self.connections: set[_Connection] = set()
        self.ws_down: _Pump | None = None
        self._held: dict[Direction, list[tuple[_Pump, bytes]]] = {"up": [], "down": []}
        self._flush_tasks: dict[Direction, asyncio.Task[None] | None] = {"up": None, "down": None}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.server = await asyncio.start_server(self._accept, sock=sock, limit=2**22)
        self.port = sock.getsockname()[1]

    def _is_cut(self) -> bool:
        return self.cut or self.network.global_cut

    def abort_all(self) -> None:
        for conn in list(self.connections):
            conn.abort()
            self.stats.cut += 1

    async def close(self) -> None:
        self.abort_all()
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await self.server.wait_closed()
        for task in self._flush_tasks.values():
            if task is not None:
                task.cancel()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._is_cut():
            self.stats.refused += 1
            writer.transport.abort()
            return
        opened = await self._open_upstream()
        if opened is None:
            self.stats.refused += 1
            writer.transport.abort()
            return
        up_r, up_w = opened
        self.stats.connections += 1
        conn = _Connection(self, writer, up_w)
        self.connections.add(conn)
        try:
            head = await _read_head(reader)
            if head is None:
                return
            self.network.record(self.device, "up", "http", head)
            up_w.write(head)
            if b"\r\nupgrade: websocket" in head.lower():
                response = await _read_head(up_r)
                if response is None:
                    return
                self.network.record(self.device, "down", "http", response)
                writer.write(response)
                if not response.startswith(b"HTTP/1.1 101"):
                    await self._pipe_raw(conn, reader, up_r, up_w, writer)
                    return
                down = _Pump(writer, self.network.clock)
                up = _Pump(up_w, self.network.clock)
                self.ws_down = down
                try:
                    await asyncio.gather(
                        self._frames(reader, up, "up"), self._frames(up_r, down, "down")
                    )
                finally:
                    if self.ws_down is down:
                        self.ws_down = None
                    await up.close()
                    await down.close()
            else:
                await self._pipe_raw(conn, reader, up_r, up_w, writer)
        except (ConnectionError, asyncio.IncompleteReadError, OSError):
            pass
        finally:
            self.connections.discard(conn)
            conn.abort()

    async def _open_upstream(
        self,
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """Connect to the first upstream that accepts (the route's order, else ``upstream``)."""
        route = self.network.route
        candidates = list(route(self.device)) if route is not None else [self.network.upstream]
        for host, port in candidates:
            try:
                return await asyncio.open_connection(host, port, limit=2**22)
            except OSError:
                continue
        return None

    async def _pipe_raw(self, conn: _Connection, client_r: asyncio.StreamReader,
                        up_r: asyncio.StreamReader, up_w: asyncio.StreamWriter,
                        client_w: asyncio.StreamWriter) -> None:
        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter,
                       direction: Direction) -> None:
            while True:
                data = await src.read(65536)
                if not data:
                    with contextlib.suppress(OSError):
                        dst.write_eof()
                    return
                self.network.record(self.device, direction, "http", data)
                dst.write(data)
                await dst.drain()

        await asyncio.gather(pump(client_r, up_w, "up"), pump(up_r, client_w, "down"))

    async def _frames(self, src: asyncio.StreamReader, out: _Pump, direction: Direction) -> None:
        """Read whole WebSocket frames; envelope frames go through the fault rules."""
        while True:
            raw, opcode, payload = await _read_frame(src)
            if direction == "up":
                self.stats.frames_up += 1
            else:
                self.stats.frames_down += 1
            self.network.record(self.device, direction, "ws", payload)
            if opcode in (1, 2) and _is_envelope_frame(payload, direction):
                self._apply(raw, out, direction)
            else:
                out.put(raw)
            if opcode == 8:  # close
                return

    def _apply(self, raw: bytes, out: _Pump, direction: Direction) -> None:
        rules = [r for r in (*self.network.global_rules, *self.rules) if r.applies(direction)]
        copies, delay = 1, 0.0
        for rule in rules:
            if rule.count is not None:
                rule.count -= 1
            if self.rng.random() >= rule.probability:
                continue
            if rule.kind == "drop":
                self.stats.dropped += 1
                return
            if rule.kind == "duplicate":
                copies += 1
                self.stats.duplicated += 1
            elif rule.kind == "delay":
                delay += rule.delay_s + self.rng.random() * rule.jitter_s
                self.stats.delayed += 1
            elif rule.kind == "reorder":
                self._hold(out, raw, direction, rule.window, copies)
                return
        for _ in range(copies):
            out.put(raw, delay)

    def _hold(self, out: _Pump, raw: bytes, direction: Direction, window: int,
              copies: int) -> None:
        held = self._held[direction]
        held.extend((out, raw) for _ in range(copies))
        if len(held) >= window:
            self._release(direction)
        elif self._flush_tasks[direction] is None:
            self._flush_tasks[direction] = asyncio.create_task(self._flush_later(direction))

    def _release(self, direction: Direction) -> None:
        held = self._held[direction]
        self._held[direction] = []
        self.rng.shuffle(held)
        if len(held) > 1:
            self.stats.reordered += len(held)
        for pump, raw in held:
            pump.put(raw)
        task = self._flush_tasks[direction]
        self._flush_tasks[direction] = None
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def _flush_later(self, direction: Direction) -> None:
        await asyncio.sleep(self.network.reorder_flush_s)
        self._flush_tasks[direction] = None
        self._release(direction)

    def inject_down(self, payload: bytes) -> bool:
        """Write a forged server->device text frame (a network adversary's replay); False if
        the device has no open WebSocket."""
        pump = self.ws_down
        if pump is None or pump.closed:
            return False
        n = len(payload)
        if n < 126:
            head = bytes((0x81, n))
        elif n < 65536:
            head = bytes((0x81, 126)) + struct.pack(">H", n)
        else:
            head = bytes((0x81, 127)) + struct.pack(">Q", n)
        self.network.record(self.device, "down", "ws", payload)
        pump.put(head + payload)
        return True

    def flush_held(self) -> None:
        directions: tuple[Direction, ...] = ("up", "down")
        for direction in directions:
            if self._held[direction]:
                self._release(direction)


def _is_envelope_frame(payload: bytes, direction: Direction) -> bool:
    head = payload[:40].replace(b" ", b"")
    if direction == "down":
        return head.startswith(b'{"type":"envelope')  # "envelope" and batched "envelopes"
    return head.startswith(b'{"type":"send"')


async def _read_head(reader: asyncio.StreamReader) -> bytes | None:
    try:
        return await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        return None


async def _read_frame(reader: asyncio.StreamReader) -> tuple[bytes, int, bytes]:
    """One RFC 6455 frame: (raw bytes, opcode, unmasked payload)."""
    head = await reader.readexactly(2)
    opcode = head[0] & 0x0F
    masked = bool(head[1] & 0x80)
    length = head[1] & 0x7F
    ext = b""
    if length == 126:
        ext = await reader.readexactly(2)
        length = struct.unpack(">H", ext)[0]
    elif length == 127:
        ext = await reader.readexactly(8)
        length = struct.unpack(">Q", ext)[0]
    mask = await reader.readexactly(4) if masked else b""
    body = await reader.readexactly(length)
    payload = _unmask(body, mask) if masked else body
    return head + ext + mask + body, opcode, payload


def _unmask(data: bytes, mask: bytes) -> bytes:
    if not data:
        return data
    repeated = (mask * (len(data) // 4 + 1))[: len(data)]
    return (int.from_bytes(data, "big") ^ int.from_bytes(repeated, "big")).to_bytes(
        len(data), "big"
    )


__all__ = ["Captured", "DeviceLink", "LinkStats", "Network", "Rule"]
