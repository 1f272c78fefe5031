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
  and failing over, seed §3.4; simulator/placement.py).

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
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

log = logging.getLogger(__name__)

Direction = Literal["up", "down"]
Channel = Literal["ws", "http"]
FaultKind = Literal["drop", "delay", "duplicate", "reorder", "cut"]
REORDER_FLUSH_S = 0.25
"""Held frames of a reorder window are released after this idle time (never stranded)."""
REORDER_TURN_S = 5.0
"""A released HTTP unit has this long to pass before the next one of its window goes anyway."""
REPLAY_TIMEOUT_S = 10.0
"""How long a duplicated request's replay waits for the relay's (discarded) answer."""


@dataclass
class Captured:
    """One unit of wire traffic: an HTTP chunk or one WebSocket message payload."""

    at: float
    device: str
    direction: Direction
    channel: Literal["http", "ws"]
    data: bytes


ACTIONS: tuple[str, ...] = (
    "ws_dropped", "ws_duplicated", "ws_delayed", "ws_reordered",
    "http_requests_dropped", "http_responses_dropped", "http_duplicated", "http_delayed",
    "http_reordered", "connections_cut", "refused",
)
"""What a network fault can be seen to do: the keys of :attr:`FaultRecord.acted`."""


@dataclass(eq=False)
class FaultRecord:
    """One declared network fault and what it did (issue #11, "faults prove they fired").

    A scenario that declares a fault claims the product survived *that* fault; if the fault
    never acted (its ``match`` names a path nobody requests, its device sent nothing, a
    shuffle left every frame where it was) the claim is empty, and the executor says so.
    ``acted`` counts units the fault actually changed, never units it merely looked at:
    a ``reorder`` counts the units released at another position than the one they arrived
    at, a ``delay`` of 0 ms counts nothing, a ``duplicate`` counts the copies that reached
    the other side. ``scope`` is the device address, None for every device (one record for
    all links). ``count`` and ``window`` are as declared (the rule's budget runs down in
    :attr:`Rule.remaining`).
    """

    kind: FaultKind
    scope: str | None
    channels: frozenset[Channel]
    directions: frozenset[Direction]
    match: str | None
    probability: float
    count: int | None
    installed_at: float
    window: int = 2
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    healed_at: float | None = None
    acted: Counter[str] = field(default_factory=Counter)

    @property
    def fired(self) -> bool:
        """True once the fault changed at least one unit or connection."""
        return any(n > 0 for n in self.acted.values())

    def note(self, action: str, n: int = 1) -> None:
        """Count ``n`` units this fault acted on (``action`` is one of :data:`ACTIONS`)."""
        if action not in ACTIONS:
            raise ValueError(f"acted: unknown action {action!r}, expected one of {ACTIONS}")
        self.acted[action] += n

    def describe(self) -> str:
        """Short text for reports: ``reorder on alice:phone (ws down, window 4)``."""
        channels = "/".join(c for c in ("ws", "http") if c in self.channels)
        if self.kind == "cut":
            parts = [channels]
        else:
            direction = ("both" if len(self.directions) == 2
                         else next(iter(self.directions)))
            parts = [f"{channels} {direction}"]
        if self.match is not None:
            parts.append(self.match)
        if self.kind == "reorder":
            parts.append(f"window {self.window}")
        if self.delay_ms or self.jitter_ms:
            lead = "after " if self.kind == "drop" else ""
            jitter = f" +{self.jitter_ms:g} jitter" if self.jitter_ms else ""
            parts.append(f"{lead}{self.delay_ms:g} ms{jitter}")
        if self.probability < 1.0:
            parts.append(f"p={self.probability:g}")
        if self.count is not None:
            parts.append(f"count {self.count}")
        return f"{self.kind} on {self.scope or 'every device'} ({', '.join(parts)})"


@dataclass(eq=False)
class Rule:
    """One active fault: its :class:`FaultRecord` (what was declared, what it did) and its
    run-time state. ``remaining`` is how many more units it may consider (None = no limit).

    ``match`` (HTTP only) restricts the rule to requests whose ``METHOD /path`` starts with
    it (``"PUT /v1/messages/"``; ``"* /v1/messages"`` for any method) and to their responses.
    """

    record: FaultRecord
    remaining: int | None = None
    windows: dict[Direction, _HttpWindow] = field(default_factory=dict, repr=False)

    @property
    def kind(self) -> FaultKind:
        return self.record.kind

    @property
    def probability(self) -> float:
        return self.record.probability

    @property
    def delay_s(self) -> float:
        return self.record.delay_ms / 1000.0

    @property
    def jitter_s(self) -> float:
        return self.record.jitter_ms / 1000.0

    def applies(self, direction: Direction, channel: Channel = "ws",
                request_line: str = "") -> bool:
        record = self.record
        if direction not in record.directions or channel not in record.channels:
            return False
        if self.remaining is not None and self.remaining <= 0:
            return False
        if channel == "http":
            if record.kind == "duplicate" and direction == "down":
                return False  # a response answers one request: only requests are replayed
            if record.match is not None and not _matches(record.match, request_line):
                return False
        return True

    def consider(self) -> None:
        """One unit was drawn against this rule (hit or not): its ``count`` runs down."""
        if self.remaining is not None:
            self.remaining -= 1


@dataclass
class LinkStats:
    """One link's totals (every fault together). Like :attr:`FaultRecord.acted` they count
    what happened, not what was attempted: ``reordered`` is the frames released at another
    position than they arrived at, ``cut`` the open connections a cut aborted."""

    connections: int = 0
    refused: int = 0
    frames_up: int = 0
    frames_down: int = 0
    dropped: int = 0
    duplicated: int = 0
    delayed: int = 0
    reordered: int = 0
    cut: int = 0
    http_requests: int = 0
    http_dropped_requests: int = 0
    http_dropped_responses: int = 0
    http_duplicated: int = 0
    http_delayed: int = 0
    http_reordered: int = 0


def _directions(direction: str) -> frozenset[Direction]:
    if direction == "both":
        return frozenset({"up", "down"})
    if direction in ("up", "down"):
        return frozenset({direction})  # type: ignore[arg-type]
    raise ValueError(f"direction must be up, down or both, got {direction!r}")


def _channels(channel: str) -> frozenset[Channel]:
    if channel == "both":
        return frozenset({"ws", "http"})
    if channel in ("ws", "http"):
        return frozenset({channel})  # type: ignore[arg-type]
    raise ValueError(f"channel must be ws, http or both, got {channel!r}")


def _matches(pattern: str, request_line: str) -> bool:
    """``"PUT /v1/messages/"`` matches ``"PUT /v1/messages/bob"``; ``"*"`` is any method."""
    method, _, prefix = pattern.partition(" ")
    got_method, _, got_path = request_line.partition(" ")
    return (method in ("*", got_method)) and got_path.startswith(prefix or "/")


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
        self.global_cuts: list[FaultRecord] = []
        self.faults: list[FaultRecord] = []
        """Every fault declared on this network, in declaration order (healed ones too)."""
        self.reorder_flush_s = reorder_flush_s
        self.rules_added = 0
        self.route: Callable[[str], Sequence[tuple[str, int]]] | None = None
        """The relay addresses a device tries, in order (replicas); None: ``upstream``."""

    def retarget(self, host: str, port: int) -> None:
        """Point every link at a new relay address (a restarted relay on another port)."""
        self.upstream = (host, port)

    def rng_for(self, device: str, stream: str = "") -> random.Random:
        """The seeded RNG of one device's stream (``""``: the WebSocket frames, as always)."""
        name = device if not stream else f"{device}\x00{stream}"
        digest = hashlib.sha256(f"{self.seed}\x00net\x00{name}".encode()).digest()
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
        channel: str = "both",
        match: str | None = None,
    ) -> FaultRecord:
        """Install a fault on one device (``device``) or on every device (None); its record
        (also appended to :attr:`faults`) counts what it does until healed.

        ``channel`` is ``ws``, ``http`` or ``both``; ``match`` (``"METHOD /path-prefix"``)
        narrows a rule to those HTTP requests and their responses."""
        if not 0.0 <= probability <= 1.0:
            raise ValueError("probability must be within [0, 1]")
        channels = _channels(channel)
        if match is not None and channels != {"http"}:
            raise ValueError("match applies to HTTP requests: use channel='http'")
        record = FaultRecord(kind, device, channels, _directions(direction), match,
                             probability, count, self.clock(), max(2, window), delay_ms,
                             jitter_ms)
        if kind == "cut":
            self.faults.append(record)
            if device is None:
                self.global_cuts.append(record)
                for link in self.links.values():
                    link.abort_all(channels, record)
            else:
                target = self.links.get(device)
                if target is not None:  # no link yet: nothing to cut (the record says so)
                    target.cuts.append(record)
                    target.abort_all(channels, record)
            return record
        owner = None if device is None else self.links[device]
        self.faults.append(record)
        self.rules_added += 1
        rule = Rule(record, count)
        if kind == "reorder":
            rng = self.rng_for(device or "*", f"reorder{self.rules_added}")
            for d in record.directions:
                rule.windows[d] = _HttpWindow(record, rng, self.reorder_flush_s)
        if owner is None:
            self.global_rules.append(rule)
        else:
            owner.rules.append(rule)
        return record

    def heal(self, device: str | None = None) -> None:
        """Remove every fault on the scope (the whole network when ``device`` is None)."""
        if device is None:
            now = self.clock()
            for rule in self.global_rules:
                _release_windows(rule)
                rule.record.healed_at = now
            for record in self.global_cuts:
                record.healed_at = now
            self.global_rules.clear()
            self.global_cuts.clear()
            for link in self.links.values():
                link.heal()
        else:
            target = self.links.get(device)
            if target is not None:
                target.heal()

    def cut_by(self, channel: Channel, device: str | None = None) -> FaultRecord | None:
        """The cut that refuses ``channel`` to ``device`` (global cuts first), if any."""
        link = self.links.get(device) if device is not None else None
        cuts: list[FaultRecord] = [*self.global_cuts, *(link.cuts if link is not None else [])]
        return next((record for record in cuts if channel in record.channels), None)

    def totals(self) -> LinkStats:
        total = LinkStats()
        for link in self.links.values():
            for name in vars(total):
                setattr(total, name, getattr(total, name) + getattr(link.stats, name))
        return total

    def wire_bytes(self) -> int:
        return sum(len(c.data) for c in self.captured)

    async def close(self) -> None:
        for rule in self.global_rules:
            _release_windows(rule)
        for link in list(self.links.values()):
            await link.close()
        self.links.clear()


class _HeldUnit(NamedTuple):
    """One HTTP unit waiting in a reorder window."""

    key: tuple[str, int]
    turn: asyncio.Future[None]
    done: asyncio.Event
    stats: LinkStats


class _HttpWindow:
    """A reorder rule's window over HTTP units of one direction (all devices of its scope).

    Units wait in :meth:`hold` until ``size`` of them are held (or the window idles for
    ``flush_s``); then they are released one at a time, in an order drawn from the rule's own
    RNG over the units sorted by (device, per-device sequence) — so the draw does not depend
    on which concurrent request the event loop delivered first. Each released unit signals
    :meth:`passed` (forwarded and answered, or failed) before the next one goes, which is what
    makes "B reached the relay before A" true, not just likely. A unit released at another
    position than it arrived at counts as reordered (on its link and on the rule's record);
    one the draw left in place does not.
    """

    def __init__(self, record: FaultRecord, rng: random.Random, flush_s: float) -> None:
        self.record = record
        self.size = record.window
        self.rng = rng
        self.flush_s = flush_s
        self.held: list[_HeldUnit] = []
        self.flusher: asyncio.Task[None] | None = None
        self.releasers: set[asyncio.Task[None]] = set()

    async def hold(self, key: tuple[str, int], stats: LinkStats) -> asyncio.Event:
        """Wait for this unit's turn; set the returned event once it has passed."""
        loop = asyncio.get_running_loop()
        turn: asyncio.Future[None] = loop.create_future()
        done = asyncio.Event()
        self.held.append(_HeldUnit(key, turn, done, stats))
        if len(self.held) >= self.size:
            self.release()
        elif self.flusher is None:
            self.flusher = asyncio.create_task(self._flush_later())
        try:
            await turn
        except asyncio.CancelledError:
            done.set()  # its connection went away: the window does not wait for it
            raise
        return done

    def release(self) -> None:
        arrived = [unit for unit in self.held if not unit.turn.done()]  # not gone meanwhile
        self.held = []
        batch = sorted(arrived, key=lambda unit: unit.key)
        self.rng.shuffle(batch)
        if self.flusher is not None and self.flusher is not asyncio.current_task():
            self.flusher.cancel()
        self.flusher = None
        if not batch:
            return
        for unit in _moved(arrived, batch):
            unit.stats.http_reordered += 1
            self.record.note("http_reordered")
        task = asyncio.get_running_loop().create_task(self._one_by_one(batch))
        self.releasers.add(task)
        task.add_done_callback(self.releasers.discard)

    async def _one_by_one(self, batch: list[_HeldUnit]) -> None:
        for unit in batch:
            if not unit.turn.done():
                unit.turn.set_result(None)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(unit.done.wait(), REORDER_TURN_S)

    async def _flush_later(self) -> None:
        await asyncio.sleep(self.flush_s)
        self.flusher = None
        self.release()

    def release_all(self) -> None:
        """Heal: let every held unit go now, in arrival order (nothing is reordered)."""
        batch, self.held = self.held, []
        for unit in batch:
            unit.done.set()
            if not unit.turn.done():
                unit.turn.set_result(None)
        if self.flusher is not None:
            self.flusher.cancel()
            self.flusher = None


def _moved(arrived: Sequence[Any], released: Sequence[Any]) -> list[Any]:
    """The units ``released`` at another position than they had in ``arrived`` (the same
    units; equal units — copies of one frame — are interchangeable, so swapping two copies
    moves nothing)."""
    return [unit for unit, was in zip(released, arrived, strict=True) if unit != was]


def _release_windows(rule: Rule) -> None:
    for window in rule.windows.values():
        window.release_all()


@dataclass
class _Verdict:
    """What the rules decided for one HTTP unit, and which rule decided each part."""

    dropped_by: FaultRecord | None = None
    drop_after_s: float = 0.0
    duplicated_by: list[FaultRecord] = field(default_factory=list)
    delays: list[tuple[FaultRecord, float]] = field(default_factory=list)
    window: _HttpWindow | None = None

    @property
    def delay_s(self) -> float:
        return sum(seconds for _, seconds in self.delays)


class _HeldFrame(NamedTuple):
    """One WebSocket frame (or a copy of it) waiting in a reorder window."""

    seq: int
    pump: _Pump
    raw: bytes
    delay_s: float
    record: FaultRecord


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
        self.channel: Channel = "http"  # "ws" once the upgrade request is seen
        self.tasks: list[asyncio.Task[None]] = []

    def abort(self) -> bool:
        """Reset both sides; True if either was still open (the abort changed something)."""
        was_open = False
        for w in (self.client_w, self.upstream_w):
            transport = w.transport
            if transport is not None and not transport.is_closing():
                transport.abort()
                was_open = True
        return was_open


class DeviceLink:
    """The proxy in front of one device: ``url`` is what the device's client connects to."""

    def __init__(self, network: Network, device: str) -> None:
        self.network = network
        self.device = device
        self.rules: list[Rule] = []
        self.cuts: list[FaultRecord] = []
        self.stats = LinkStats()
        self.rng = network.rng_for(device)
        self.http_rng: dict[Direction, random.Random] = {
            "up": network.rng_for(device, "http-up"),
            "down": network.rng_for(device, "http-down"),
        }
        self.http_seq = 0
        self._handlers: set[asyncio.Task[Any]] = set()
        self.server: asyncio.Server | None = None
        self.port = 0
        self.connections: set[_Connection] = set()
        self.ws_down: _Pump | None = None
        self._held: dict[Direction, list[_HeldFrame]] = {"up": [], "down": []}
        self._frame_seq = 0
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

    def _cut_by(self, channel: Channel) -> FaultRecord | None:
        return self.network.cut_by(channel, self.device)

    def _refuse(self, by: FaultRecord | None) -> None:
        self.stats.refused += 1
        if by is not None:
            by.note("refused")

    def abort_all(self, channels: frozenset[Channel] = frozenset({"ws", "http"}),
                  by: FaultRecord | None = None) -> None:
        """Reset the open connections of ``channels``; those a cut (``by``) reset count as
        cut, a link closing down is no fault."""
        for conn in list(self.connections):
            if conn.channel in channels and conn.abort() and by is not None:
                self.stats.cut += 1
                by.note("connections_cut")

    def heal(self) -> None:
        """Remove this link's faults: rules (held units go now), cuts."""
        now = self.network.clock()
        for rule in self.rules:
            _release_windows(rule)
            rule.record.healed_at = now
        for record in self.cuts:
            record.healed_at = now
        self.rules.clear()
        self.cuts.clear()
        self.flush_held()

    async def close(self) -> None:
        self.abort_all()
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await self.server.wait_closed()
        if self._handlers:  # let aborted connections' handlers end before the loop does
            await asyncio.wait(set(self._handlers), timeout=2.0)
        for task in self._flush_tasks.values():
            if task is not None:
                task.cancel()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handler = asyncio.current_task()
        if handler is not None:
            self._handlers.add(handler)
            handler.add_done_callback(self._handlers.discard)
        http_cut, ws_cut = self._cut_by("http"), self._cut_by("ws")
        if http_cut is not None and ws_cut is not None:  # whatever it will be, it is cut
            self._refuse(next((r for r in (http_cut, ws_cut) if len(r.channels) == 2),
                              http_cut))
            writer.transport.abort()
            return
        opened = await self._open_upstream()
        if opened is None:
            self._refuse(None)  # no relay replica accepts: not a network fault
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
            upgrade = b"\r\nupgrade: websocket" in head.lower()
            conn.channel = "ws" if upgrade else "http"
            cut = self._cut_by(conn.channel)
            if cut is not None:
                self._refuse(cut)
                return
            if not upgrade:
                await self._http(conn, head, reader, writer, up_r, up_w)
                return
            self.network.record(self.device, "up", "http", head)
            up_w.write(head)
            if upgrade:
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
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                OSError, ValueError):
            pass  # a peer went away or spoke something that is not HTTP/1.1: drop the pair
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

    # -- HTTP: one request/response exchange at a time (HTTP/1.1 without pipelining) ----------

    async def _http(self, conn: _Connection, head: bytes, client_r: asyncio.StreamReader,
                    client_w: asyncio.StreamWriter, up_r: asyncio.StreamReader,
                    up_w: asyncio.StreamWriter) -> None:
        """Relay whole requests and responses of one keep-alive connection through the rules.

        A dropped unit aborts the connection (the client sees a reset, as when a lost segment
        ends in a timeout); a delayed or reordered one waits on this connection only, so other
        connections of the device may overtake it."""
        while True:
            request = head + await _read_body(client_r, head)
            request_line = _request_line(head)
            self.network.record(self.device, "up", "http", request)
            self.stats.http_requests += 1
            self.http_seq += 1
            key = (self.device, self.http_seq)
            up = self._http_verdict("up", request_line)
            if up.dropped_by is not None:
                self.stats.http_dropped_requests += 1
                up.dropped_by.note("http_requests_dropped")
                await self._lose(conn, up.drop_after_s)
                return
            passed = await self._http_wait(up, key)
            try:
                up_w.write(request)
                await up_w.drain()
                response_head = await _read_head(up_r)
                if response_head is None:
                    return
                response = response_head + await _read_body(
                    up_r, response_head, request_method=request_line.partition(" ")[0])
            finally:
                if passed is not None:
                    passed.set()
            self.network.record(self.device, "down", "http", response)
            for duplicator in up.duplicated_by:
                if await self._replay(request, up_w.get_extra_info("peername")):
                    self.stats.http_duplicated += 1
                    duplicator.note("http_duplicated")
            down = self._http_verdict("down", request_line)
            if down.dropped_by is not None:
                self.stats.http_dropped_responses += 1
                down.dropped_by.note("http_responses_dropped")
                await self._lose(conn, down.drop_after_s)
                return
            passed = await self._http_wait(down, key)
            try:
                client_w.write(response)
                await client_w.drain()
            finally:
                if passed is not None:
                    passed.set()
            if _closes(head) or _closes(response_head) or not _framed(response_head):
                return
            next_head = await _read_head(client_r)
            if next_head is None:
                return
            head = next_head

    def _http_verdict(self, direction: Direction, request_line: str) -> _Verdict:
        """Draw every applicable rule for one HTTP unit from this link's HTTP stream."""
        verdict = _Verdict()
        rng = self.http_rng[direction]
        rules = [r for r in (*self.network.global_rules, *self.rules)
                 if r.applies(direction, "http", request_line)]
        for rule in rules:
            rule.consider()
            if rng.random() >= rule.probability:
                continue
            if rule.kind == "drop":
                verdict.dropped_by, verdict.drop_after_s = rule.record, rule.delay_s
                return verdict
            if rule.kind == "duplicate":
                verdict.duplicated_by.append(rule.record)
            elif rule.kind == "delay":
                seconds = rule.delay_s + rng.random() * rule.jitter_s
                if seconds > 0:
                    verdict.delays.append((rule.record, seconds))
            elif rule.kind == "reorder" and verdict.window is None:
                verdict.window = rule.windows.get(direction)
        return verdict

    async def _http_wait(self, verdict: _Verdict, key: tuple[str, int]) -> asyncio.Event | None:
        """Apply a unit's delay, then its reorder turn; the event to set once it passed."""
        if verdict.delays:
            self.stats.http_delayed += 1
            for record, _ in verdict.delays:
                record.note("http_delayed")
            await asyncio.sleep(verdict.delay_s)
        if verdict.window is None:
            return None
        return await verdict.window.hold(key, self.stats)  # counts what it moves

    async def _lose(self, conn: _Connection, after_s: float) -> None:
        """A lost unit: nothing more crosses this connection; the client sees it reset (after
        ``after_s``: a loss noticed by a timeout rather than a reset)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + after_s
        while not conn.client_w.transport.is_closing():  # a cut or close ends the wait
            left = deadline - loop.time()
            if left <= 0:
                break
            await asyncio.sleep(min(left, 0.05))
        conn.abort()

    async def _replay(self, request: bytes, upstream: tuple[str, int] | None) -> bool:
        """A duplicated request: the same bytes to the relay on a side connection, its answer
        read whole and discarded (the client already has one). True if the copy was sent
        (a relay that refuses the side connection got no duplicate)."""
        sent = False

        async def once() -> None:
            nonlocal sent
            host, port = upstream or self.network.upstream
            up_r, up_w = await asyncio.open_connection(host, port, limit=2**22)
            try:
                up_w.write(request)
                await up_w.drain()
                sent = True
                head = await _read_head(up_r)
                if head is not None:
                    await _read_body(up_r, head,
                                     request_method=_request_line(request).partition(" ")[0])
            finally:
                up_w.transport.abort()

        with contextlib.suppress(OSError, asyncio.IncompleteReadError, TimeoutError,
                                 asyncio.LimitOverrunError, ValueError):
            await asyncio.wait_for(once(), REPLAY_TIMEOUT_S)
        return sent

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
        """Draw every applicable rule for one envelope frame. A drop ends it (copies or delays
        drawn before it did nothing, so they count nothing); a reorder holds the frame (its
        copies and delay included) until its window is released."""
        rules = [r for r in (*self.network.global_rules, *self.rules) if r.applies(direction)]
        duplicators: list[FaultRecord] = []
        delays: list[tuple[FaultRecord, float]] = []
        reorder: Rule | None = None
        for rule in rules:
            rule.consider()
            if self.rng.random() >= rule.probability:
                continue
            if rule.kind == "drop":
                self.stats.dropped += 1
                rule.record.note("ws_dropped")
                return
            if rule.kind == "duplicate":
                duplicators.append(rule.record)
            elif rule.kind == "delay":
                seconds = rule.delay_s + self.rng.random() * rule.jitter_s
                if seconds > 0:
                    delays.append((rule.record, seconds))
            elif rule.kind == "reorder":
                reorder = rule
                break
        for record in duplicators:
            self.stats.duplicated += 1
            record.note("ws_duplicated")
        if delays:
            self.stats.delayed += 1
            for record, _ in delays:
                record.note("ws_delayed")
        delay = sum(seconds for _, seconds in delays)
        copies = 1 + len(duplicators)
        if reorder is not None:
            self._hold(out, raw, direction, reorder, copies, delay)
            return
        for _ in range(copies):
            out.put(raw, delay)

    def _hold(self, out: _Pump, raw: bytes, direction: Direction, rule: Rule, copies: int,
              delay: float) -> None:
        held = self._held[direction]
        self._frame_seq += 1
        held.extend(_HeldFrame(self._frame_seq, out, raw, delay, rule.record)
                    for _ in range(copies))
        if len(held) >= rule.record.window:
            self._release(direction)
        elif self._flush_tasks[direction] is None:
            self._flush_tasks[direction] = asyncio.create_task(self._flush_later(direction))

    def _release(self, direction: Direction) -> None:
        """Let a window's frames go in a shuffled order; those that left their arrival
        position are reordered (on the link's stats and on the rule that held them)."""
        arrived = self._held[direction]
        self._held[direction] = []
        batch = list(arrived)
        self.rng.shuffle(batch)
        for frame in _moved(arrived, batch):
            self.stats.reordered += 1
            frame.record.note("ws_reordered")
        for frame in batch:
            frame.pump.put(frame.raw, frame.delay_s)
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


def _request_line(head: bytes) -> str:
    """``"PUT /v1/messages/bob"`` from a request head (the query string is kept)."""
    first = head.split(b"\r\n", 1)[0].decode("latin-1")
    method, _, rest = first.partition(" ")
    return f"{method} {rest.rpartition(' ')[0] or rest}"


def _header(head: bytes, name: bytes) -> bytes | None:
    for line in head.split(b"\r\n")[1:]:
        key, sep, value = line.partition(b":")
        if sep and key.strip().lower() == name:
            return value.strip()
    return None


def _closes(head: bytes) -> bool:
    return (_header(head, b"connection") or b"").lower() == b"close"


def _framed(response_head: bytes) -> bool:
    """False for a response whose body ends with the connection (no length, not chunked)."""
    return (_header(response_head, b"content-length") is not None
            or b"chunked" in (_header(response_head, b"transfer-encoding") or b"").lower()
            or not _has_body(response_head, ""))


def _has_body(head: bytes, request_method: str) -> bool:
    if not head.startswith(b"HTTP/"):
        return True  # a request: its headers say whether a body follows
    status = int(head.split(b" ", 2)[1])
    return not (request_method == "HEAD" or 100 <= status < 200 or status in (204, 304))


async def _read_body(reader: asyncio.StreamReader, head: bytes,
                     request_method: str = "") -> bytes:
    """The raw body that follows ``head`` (Content-Length, chunked, or up to EOF for a
    response without either), exactly as it crossed the wire."""
    if not _has_body(head, request_method):
        return b""
    if b"chunked" in (_header(head, b"transfer-encoding") or b"").lower():
        out = bytearray()
        while True:
            line = await reader.readuntil(b"\r\n")
            out += line
            size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while True:  # trailers, then the empty line
                    trailer = await reader.readuntil(b"\r\n")
                    out += trailer
                    if trailer == b"\r\n":
                        return bytes(out)
            out += await reader.readexactly(size + 2)
    length = _header(head, b"content-length")
    if length is not None:
        return await reader.readexactly(int(length))
    if head.startswith(b"HTTP/"):
        return await reader.read(-1)
    return b""


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


__all__ = ["ACTIONS", "Captured", "DeviceLink", "FaultRecord", "LinkStats", "Network",
           "Rule"]
