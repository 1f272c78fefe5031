"""One shard of a sharded fleet: a spawned process running its share of the plan's devices
as real clients against the relay process (issue 16 item 6, docs/simulator.md "Sharded fleet").

A shard installs its devices (fresh keys, login, published prekeys), opens their push
sockets, and then follows the coordinator's phases over a pipe::

    shard -> ("ready", cpu)        devices registered and connected
    coord -> "go"                  every shard is ready: send
    shard -> ("sent", counts)      this shard's senders are done
    coord -> "drain"               every shard has sent: wait for the last arrivals
    shard -> ("report", report)    what each device decrypted, counters, CPU split
    coord -> "stop"                close the clients and exit

plus ``("progress", (installed, sent, decrypted))`` every few seconds and
``("failed", reason)`` if the shard dies of an exception. Devices connect directly (no proxy
link, no capture: this is the capacity harness, not a scenario) and take batched pushes.

CPU is split where it is spent: :class:`MeteredDevice` times the protocol's own work
(key generation, X3DH, Double Ratchet encrypt and decrypt: SPEC §2-§3) with the thread's CPU
clock, and the rest of the process's CPU is the harness's (HTTP, WebSocket, JSON, asyncio,
bookkeeping), which is what the issue's "harness CPU per envelope" bounds.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import resource
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from semafore import sabotage as sabotages
from semafore.client import DeviceClient, Received
from semafore.client.clock import SystemClock
from semafore.client.device import Device, PrekeyPolicy
from semafore.client.errors import ClientError
from semafore.client.transport import RelayHttp, SharedConnectionPool
from semafore.deploy.balancer import terminate_with_parent
from semafore.protocol.entropy import Entropy, SeededEntropy
from semafore.protocol.errors import ProtocolError
from semafore.protocol.keys import PreKeyBundle
from simulator.sharded_plan import ORG, FleetPlan, PlannedMessage, body_of, delivery_key, digest_of

TEST_OTP = "000000"  # the relay's test OTP for allow-listed orgs (ADR-0164)
PROGRESS_EVERY = 10.0


def process_cpu() -> float:
    """This process's user + system CPU seconds so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class ProtocolMeter:
    """CPU seconds spent inside protocol calls (``time.thread_time``: the event loop's
    thread only, so another thread's work never counts)."""

    seconds: float = 0.0
    calls: int = 0

    @contextlib.contextmanager
    def timed(self) -> Iterator[None]:
        start = time.thread_time()
        try:
            yield
        finally:
            self.seconds += time.thread_time() - start
            self.calls += 1


@dataclass
class MeteredDevice(Device):
    """A :class:`Device` whose protocol work is timed on ``meter`` (same behaviour: every
    method defers to :class:`Device`)."""

    meter: ProtocolMeter = field(default_factory=ProtocolMeter, compare=False, repr=False)

    def start_session(self, bundle: PreKeyBundle, entropy: Entropy, now: float) -> None:
        with self.meter.timed():
            super().start_session(bundle, entropy, now)

    def encrypt(self, address: str, plaintext: bytes, entropy: Entropy) -> bytes:
        with self.meter.timed():
            return super().encrypt(address, plaintext, entropy)

    def decrypt(self, sender: str, envelope: bytes) -> bytes:
        with self.meter.timed():
            return super().decrypt(sender, envelope)

    def opks_to_upload(self, server_count: int, entropy: Entropy,
                       policy: PrekeyPolicy) -> list[Any]:
        with self.meter.timed():
            return super().opks_to_upload(server_count, entropy, policy)

    def rotate_spk(self, entropy: Entropy, now: float) -> None:
        with self.meter.timed():
            super().rotate_spk(entropy, now)


@dataclass(frozen=True)
class ShardSpec:
    """Everything a shard process needs, pickled to it at spawn; the plan itself is
    recomputed from its parameters (:class:`FleetPlan` is deterministic)."""

    index: int
    shards: int
    url: str
    plan: FleetPlan
    opk_count: int = 100
    concurrency: int = 64
    install_concurrency: int = 16
    http_pools: int = 64
    """Keep-alive pools the shard's devices share (the shard's *i*-th device borrows
    pool *i* mod ``http_pools``), each of ``http_connections``: many small pools, because
    httpcore scans a pool's every connection and queued request on each request (one pool
    for a whole shard cost more CPU than the reconnects it saved)."""
    http_connections: int = 4
    ack_delay: float = 0.25
    """Seconds a device may hold acks to send them together (``DeviceClient.ack_delay``)."""
    connect_batch: int = 50
    drain_idle: float = 20.0
    drain_timeout: float = 600.0
    sabotage: tuple[str, ...] = ()
    """TEST ONLY (:mod:`semafore.sabotage`): client defects switched on in this shard."""


@dataclass(frozen=True)
class CpuSplit:
    """CPU seconds of one process over one phase: all of it, and the protocol's part."""

    total: float
    protocol: float

    @property
    def harness(self) -> float:
        return self.total - self.protocol

    def __sub__(self, other: CpuSplit) -> CpuSplit:
        return CpuSplit(self.total - other.total, self.protocol - other.protocol)

    def __add__(self, other: CpuSplit) -> CpuSplit:
        return CpuSplit(self.total + other.total, self.protocol + other.protocol)


@dataclass
class ShardReport:
    """One shard's result: device -> delivery key -> digest of the plaintext it decrypted,
    summed client counters, send failures (named), and CPU at the end of each phase."""

    index: int
    received: dict[str, dict[str, bytes]]
    counters: dict[str, int]
    send_failures: list[str]
    setup_cpu: CpuSplit
    end_cpu: CpuSplit


def run_shard(spec: ShardSpec, conn: Connection) -> None:
    """The shard process's entry point (spawned by :class:`simulator.sharded.ShardedFleet`)."""
    terminate_with_parent()
    for name in ("semafore", "websockets", "httpx", "asyncio"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        with sabotages.switched_on(*spec.sabotage):
            asyncio.run(_Shard(spec, conn).run())
    except Exception as exc:
        with contextlib.suppress(OSError, ValueError):
            conn.send(("failed", f"{type(exc).__name__}: {exc}"))
        raise
    finally:
        conn.close()


class _Shard:
    def __init__(self, spec: ShardSpec, conn: Connection) -> None:
        self.spec = spec
        self.conn = conn
        self.meter = ProtocolMeter()
        self.clock = SystemClock()
        self.entropy = SeededEntropy(f"semafore-sim:{spec.plan.seed}")
        self.clients: dict[str, DeviceClient] = {}
        self.pools = [SharedConnectionPool(spec.http_connections)
                      for _ in range(spec.http_pools)]
        self.received: dict[str, dict[str, bytes]] = {}
        self.arrivals = 0
        self.send_failures: list[str] = []
        self._arrived = asyncio.Event()

    def cpu(self) -> CpuSplit:
        return CpuSplit(process_cpu(), self.meter.seconds)

    async def command(self, expected: str) -> None:
        got = await asyncio.to_thread(self.conn.recv)
        if got != expected:
            raise RuntimeError(f"shard {self.spec.index}: expected {expected!r}, got {got!r}")

    async def run(self) -> None:
        plan = self.spec.plan
        mine = plan.shard_devices(self.spec.index, self.spec.shards)
        gate = asyncio.Semaphore(self.spec.install_concurrency)

        async def install(address: str) -> None:
            async with gate:
                await self.install(address)

        reporter = asyncio.create_task(self.progress())
        try:
            await asyncio.gather(*(install(a) for a in mine))
        finally:
            reporter.cancel()
        clients = list(self.clients.values())
        for start in range(0, len(clients), self.spec.connect_batch):
            group = clients[start : start + self.spec.connect_batch]
            for client in group:
                client.connect()
            await asyncio.wait_for(
                asyncio.gather(*(c.wait_connected(120) for c in group)), 300)
        setup = self.cpu()
        setup_requests = sum(c.http.requests for c in clients)
        self.conn.send(("ready", setup))
        await self.command("go")
        reporter = asyncio.create_task(self.progress())
        try:
            await self.send_all(plan.shard_sends(self.spec.index, self.spec.shards))
            self.conn.send(("sent", sum(c.counters.sent_messages for c in clients)))
            await self.command("drain")
            await self.drain(sum(len(plan.expected[a]) for a in mine))
        finally:
            reporter.cancel()
        counters: dict[str, int] = {}
        for client in clients:
            for name, value in dataclasses.asdict(client.counters).items():
                counters[name] = counters.get(name, 0) + value
        # HTTP requests of the traffic phase (bundle, identity and device-list lookups: what
        # session set-up costs beyond the WebSocket path)
        counters["traffic_http_requests"] = sum(c.http.requests for c in clients) - setup_requests
        self.conn.send(("report", ShardReport(self.spec.index, self.received, counters,
                                              self.send_failures, setup, self.cpu())))
        await self.command("stop")
        await self.close()

    async def install(self, address: str) -> None:
        user, device_id = address.split(":", 1)
        entropy = self.entropy.fork(f"device:{user}:{device_id}:0")  # as simulator.fleet labels
        with self.meter.timed():
            device = MeteredDevice.create(user, device_id, entropy, self.clock.now(),
                                          opk_count=self.spec.opk_count)
        assert isinstance(device, MeteredDevice)  # Device.create builds ``cls``
        device.meter = self.meter
        nth = self.spec.plan.position[address] // self.spec.shards  # its place in this shard
        client = DeviceClient(
            device, ORG, self.spec.url, entropy, self.clock,
            http=RelayHttp(self.spec.url, entropy, transport=self.pools[nth % len(self.pools)]),
            prekeys=PrekeyPolicy(opk_batch=self.spec.opk_count,
                                 opk_low_water=max(1, self.spec.opk_count // 4)),
            on_receive=self.on_receive, ws_send_timeout=60.0, ack_delay=self.spec.ack_delay,
            sibling_lookup=True,
        )

        async def login_again() -> None:
            await client.login(TEST_OTP)

        client.http.reauthenticate = login_again
        await client.register(TEST_OTP)
        self.clients[address] = client

    def on_receive(self, client: DeviceClient, received: Received) -> None:
        key = delivery_key(received.sender_user_id, received.content.message_id)
        have = self.received.setdefault(client.address, {})
        if key not in have:
            have[key] = digest_of(received.content.body)
            self.arrivals += 1
            self._arrived.set()

    async def send_all(self, sends: list[PlannedMessage]) -> None:
        by_sender: dict[str, list[PlannedMessage]] = {}
        for message in sends:
            by_sender.setdefault(message.sender, []).append(message)
        gate = asyncio.Semaphore(self.spec.concurrency)
        seed = self.spec.plan.seed

        async def sender(address: str, messages: list[PlannedMessage]) -> None:
            client = self.clients[address]
            for message in messages:  # one device's sends stay in plan order
                async with gate:
                    try:
                        await client.send_text(message.recipient, body_of(seed, message.index),
                                               message_id=message.message_id)
                    except (ClientError, ProtocolError) as exc:
                        self.send_failures.append(f"{address} -> {message.recipient} "
                                                  f"{message.message_id}: {exc}")

        await asyncio.gather(*(sender(a, m) for a, m in by_sender.items()))

    async def drain(self, expected: int) -> None:
        """Until ``expected`` distinct deliveries arrived here, nothing arrived for
        ``drain_idle`` seconds, or ``drain_timeout``; then flush the last acks."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.spec.drain_timeout
        while self.arrivals < expected and (remaining := deadline - loop.time()) > 0:
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), min(self.spec.drain_idle,
                                                                 remaining))
            except TimeoutError:
                break
        for client in self.clients.values():
            with contextlib.suppress(ClientError, OSError):
                await client.flush_acks()

    async def progress(self) -> None:
        while True:
            await asyncio.sleep(PROGRESS_EVERY)
            sent = sum(c.counters.sent_messages for c in self.clients.values())
            self.conn.send(("progress", (len(self.clients), sent, self.arrivals)))

    async def close(self) -> None:
        gate = asyncio.Semaphore(64)

        async def close(client: DeviceClient) -> None:
            async with gate:
                with contextlib.suppress(Exception):
                    await client.close()

        await asyncio.gather(*(close(c) for c in self.clients.values()))
        for pool in self.pools:
            await pool.close()

