"""A fleet sharded over processes: the relay in a process of its own, the devices spread over
shard processes, this process coordinating (issue 16 item 6, "a 10,000-device fleet";
docs/simulator.md "Sharded fleet").

One Python process cannot hold ten thousand real clients *and* the relay: the in-process
:class:`~simulator.fleet.Fleet` spends one core on both, and the relay's CPU cannot be told
apart from the harness's. Here:

- the relay runs on the embedded memory store in its own process
  (:class:`semafore.deploy.relay_process.RelayProcess`), so its CPU is read from ``/proc``;
- ``shards`` processes (spawned; default one per core) each run their share of the devices
  as real :class:`~semafore.client.DeviceClient` s (:mod:`simulator.sharded_shard`);
- this coordinator signs the organisation up, enrols the users, moves every shard through
  the same phases (ready, go, sent, drain, report) and audits the result against the seeded
  plan (:mod:`simulator.sharded_plan`): every expected delivery must have been decrypted to
  its planned plaintext by its device, and every gap is named (device, sender, message).

Reproducibility: the plan, the device identities (entropy forked per device from the seed)
and hence the expected and received sets are the same for the same seed; only timing-driven
things (ciphertext bytes once sessions interleave, the relay's own ids) differ between runs.
The scenario executor keeps using the in-process fleet; nothing here is shared with it but
the client and the plan's naming of deliveries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.context import SpawnProcess
from typing import Any

from semafore.client import Account, SystemClock, create_organisation, enrol_members, fixed_otp
from semafore.deploy.harness_relay import relay_settings
from semafore.deploy.relay_process import RelayProcess
from semafore.protocol.entropy import SeededEntropy
from simulator.sharded_plan import ORG, Audit, FleetPlan, audit, merge
from simulator.sharded_shard import CpuSplit, ShardReport, ShardSpec, process_cpu, run_shard

ADMIN = "fleet-admin"
MAX_SHARDS = 64


class ShardError(RuntimeError):
    """A shard process failed or stopped answering; ``shard`` names it, ``reason`` says how."""

    def __init__(self, shard: int, reason: str) -> None:
        super().__init__(f"shard {shard}: {reason}")
        self.shard = shard
        self.reason = reason


@dataclass(frozen=True)
class PhaseCpu:
    """CPU seconds of one phase, by where they were spent."""

    shards: CpuSplit  # every shard process: all of it, and the protocol's part
    coordinator: float
    relay: float

    @property
    def harness(self) -> float:
        """Everything but relay and protocol: the shards' non-protocol CPU and ours."""
        return self.shards.harness + self.coordinator


@dataclass
class FleetRun:
    """One sharded run: the plan's size, what arrived (the audit), counters, CPU and time."""

    plan: FleetPlan
    shards: int
    audit: Audit
    counters: dict[str, int]
    send_failures: list[str]
    setup: PhaseCpu
    traffic: PhaseCpu
    setup_s: float
    traffic_s: float
    received: dict[str, dict[str, bytes]] = field(repr=False, default_factory=dict)

    @property
    def envelopes(self) -> int:
        return self.plan.envelopes

    @property
    def missing(self) -> int:
        return self.audit.missing_count

    @property
    def ok(self) -> bool:
        return self.audit.ok and not self.send_failures

    def per_envelope_ms(self, seconds: float) -> float:
        return seconds / self.envelopes * 1e3 if self.envelopes else 0.0

    def as_dict(self) -> dict[str, Any]:
        """The figures docs/simulator.md "Benchmark" records (traffic phase per envelope)."""
        return {
            "devices": self.plan.devices,
            "users": len(self.plan.users),
            "messages": self.plan.messages,
            "contacts": self.plan.contacts,
            "shards": self.shards,
            "envelopes": self.envelopes,
            "delivered": self.audit.delivered,
            "missing": self.missing,
            "wrong_plaintext": sum(len(v) for v in self.audit.wrong_plaintext.values()),
            "unexpected": sum(len(v) for v in self.audit.unexpected.values()),
            "send_failures": len(self.send_failures),
            "setup_s": round(self.setup_s, 1),
            "traffic_s": round(self.traffic_s, 1),
            "envelopes_per_s": round(self.envelopes / self.traffic_s, 1) if self.traffic_s else 0,
            "harness_cpu_ms_per_envelope": round(self.per_envelope_ms(self.traffic.harness), 3),
            "relay_cpu_ms_per_envelope": round(self.per_envelope_ms(self.traffic.relay), 3),
            "protocol_cpu_ms_per_envelope": round(
                self.per_envelope_ms(self.traffic.shards.protocol), 3),
            "coordinator_cpu_s": round(self.traffic.coordinator, 2),
            "setup_cpu_s": {"harness": round(self.setup.harness, 1),
                            "protocol": round(self.setup.shards.protocol, 1),
                            "relay": round(self.setup.relay, 1)},
            "counters": self.counters,
        }


@dataclass
class _Shard:
    index: int
    process: SpawnProcess
    conn: Connection
    progress: tuple[int, int, int] = (0, 0, 0)  # devices installed, messages sent, decrypted


class ShardedFleet:
    """Runs ``plan`` over ``shards`` processes against a relay process; a context manager
    (the relay and every shard are stopped on exit, also on error)."""

    def __init__(
        self,
        plan: FleetPlan,
        *,
        shards: int | None = None,
        concurrency: int = 64,
        opk_count: int = 100,
        drain_idle: float = 20.0,
        drain_timeout: float = 600.0,
        phase_timeout: float = 3600.0,
        progress: Callable[[str], None] | None = None,
        relay_sabotage: tuple[str, ...] = (),
        shard_sabotage: tuple[str, ...] = (),
    ) -> None:
        count = shards if shards is not None else (os.cpu_count() or 1)
        if not 1 <= count <= MAX_SHARDS:
            raise ValueError(f"shards: between 1 and {MAX_SHARDS}, not {count}")
        if not 1 <= opk_count <= 100:
            raise ValueError(f"opk_count: 1..100 (one PUT /v1/keys), not {opk_count}")
        self.plan = plan
        self.shards = min(count, plan.devices)
        self.concurrency = concurrency
        self.opk_count = opk_count
        self.drain_idle = drain_idle
        self.drain_timeout = drain_timeout
        self.phase_timeout = phase_timeout
        self.progress = progress or (lambda _line: None)
        self.shard_sabotage = shard_sabotage
        # Idle HTTP keep-alives close after 15 s: ten thousand devices hold a WebSocket each,
        # and an HTTP connection each on top would pass the relay's descriptor limit.
        settings = relay_settings([ORG], SystemClock(), keep_alive_timeout=15.0)
        self.relay = RelayProcess(settings, sabotage=relay_sabotage, log_level=logging.ERROR)
        self._shards: list[_Shard] = []

    def __enter__(self) -> ShardedFleet:
        self.relay.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for shard in self._shards:
            with contextlib.suppress(OSError, ValueError):
                shard.conn.send("stop")
        for shard in self._shards:
            shard.process.join(30)
            if shard.process.is_alive():
                shard.process.kill()
                shard.process.join(5)
            shard.conn.close()
        self._shards = []
        self.relay.stop()

    # -- the run ---------------------------------------------------------------------------

    def run(self) -> FleetRun:
        """Set the organisation up, start the shards, run the plan, audit it."""
        t0 = time.perf_counter()
        cpu0, relay0 = process_cpu(), self.relay.cpu_seconds()
        asyncio.run(self._enrol())
        self.progress(f"{len(self.plan.users)} users enrolled in "
                      f"{time.perf_counter() - t0:.1f} s; starting {self.shards} shards")
        self._spawn()
        ready = self._collect("ready")
        setup = PhaseCpu(_sum(ready.values()), process_cpu() - cpu0,
                         self.relay.cpu_seconds() - relay0)
        setup_s = time.perf_counter() - t0
        self.progress(f"set-up done in {setup_s:.1f} s ({self.plan.devices} devices "
                      f"connected); sending {self.plan.messages} messages")
        t1 = time.perf_counter()
        cpu1, relay1 = process_cpu(), self.relay.cpu_seconds()
        self._broadcast("go")
        self._collect("sent")
        self.progress(f"all sent after {time.perf_counter() - t1:.1f} s; draining")
        self._broadcast("drain")
        reports: dict[int, ShardReport] = self._collect("report")
        traffic_s = time.perf_counter() - t1
        traffic_relay = self.relay.cpu_seconds() - relay1
        traffic_coordinator = process_cpu() - cpu1
        received = merge(r.received for r in reports.values())
        counters: dict[str, int] = {}
        failures: list[str] = []
        for report in reports.values():
            failures.extend(report.send_failures)
            for name, value in report.counters.items():
                counters[name] = counters.get(name, 0) + value
        traffic = PhaseCpu(_sum(r.end_cpu - r.setup_cpu for r in reports.values()),
                           traffic_coordinator, traffic_relay)
        return FleetRun(self.plan, self.shards, audit(self.plan, received), counters,
                        sorted(failures), setup, traffic, setup_s, traffic_s, received)

    async def _enrol(self) -> None:
        entropy = SeededEntropy(f"semafore-sim:{self.plan.seed}")
        out = await create_organisation(self.relay.url, ORG, ORG, ADMIN, entropy.fork("org"))
        admin = Account(ORG, ADMIN, self.relay.url, entropy.fork, SystemClock(), fixed_otp(),
                        totp_secret=str(out["totp_secret"]), opk_count=1)
        try:
            console = await admin.add_device("console", connect=False)
            await enrol_members(console, ORG, self.plan.users, seats=len(self.plan.users) + 2)
        finally:
            await admin.close()

    def _spawn(self) -> None:
        context = multiprocessing.get_context("spawn")
        for index in range(self.shards):
            spec = ShardSpec(index, self.shards, self.relay.url, self.plan,
                             opk_count=self.opk_count, concurrency=self.concurrency,
                             drain_idle=self.drain_idle, drain_timeout=self.drain_timeout,
                             sabotage=self.shard_sabotage)
            parent, child = context.Pipe()
            process = context.Process(target=run_shard, args=(spec, child),
                                      name=f"semafore-shard-{index}", daemon=False)
            process.start()
            child.close()
            self._shards.append(_Shard(index, process, parent))

    def _broadcast(self, command: str) -> None:
        for shard in self._shards:
            try:
                shard.conn.send(command)
            except OSError as exc:  # its end is closed: the process died
                shard.process.join(5)
                raise ShardError(shard.index, f"gone before {command!r} (exit code "
                                 f"{shard.process.exitcode}): {exc}") from None

    def _collect(self, kind: str) -> dict[int, Any]:
        """Each shard's next ``kind`` message (progress lines relayed meanwhile); a shard
        that fails, dies or says something else raises :class:`ShardError`."""
        out: dict[int, Any] = {}
        deadline = time.monotonic() + self.phase_timeout
        last_line = time.monotonic()
        by_conn = {shard.conn: shard for shard in self._shards}
        while len(out) < len(self._shards):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                waiting = sorted(s.index for s in self._shards if s.index not in out)
                raise ShardError(waiting[0], f"no {kind!r} within {self.phase_timeout:g} s")
            watched: list[Any] = [s.conn for s in self._shards if s.index not in out]
            watched += [s.process.sentinel for s in self._shards if s.index not in out]
            for ready in wait(watched, min(remaining, 5.0)):
                shard = by_conn.get(ready) if isinstance(ready, Connection) else None
                if shard is None:
                    dead = next(s for s in self._shards if s.process.sentinel == ready)
                    if dead.conn.poll():
                        continue  # read its last words first
                    raise ShardError(dead.index, f"exited with code {dead.process.exitcode} "
                                     f"waiting for {kind!r}")
                try:
                    what, payload = shard.conn.recv()
                except (EOFError, OSError):  # its end closed or reset: the process died
                    shard.process.join(5)
                    raise ShardError(shard.index, f"exited with code {shard.process.exitcode}"
                                     f" waiting for {kind!r}") from None
                if what == "progress":
                    shard.progress = payload
                elif what == kind:
                    out[shard.index] = payload
                elif what == "failed":
                    raise ShardError(shard.index, str(payload))
                else:
                    raise ShardError(shard.index, f"said {what!r} waiting for {kind!r}")
            if time.monotonic() - last_line >= 15.0:
                last_line = time.monotonic()
                installed, sent, arrived = (sum(column) for column in
                                            zip(*(s.progress for s in self._shards), strict=True))
                self.progress(f"  ... {installed} devices installed, {sent} messages sent, "
                              f"{arrived} envelopes decrypted, "
                              f"{len(out)}/{len(self._shards)} shards {kind}")
        return out


def _sum(splits: Iterable[CpuSplit]) -> CpuSplit:
    total = CpuSplit(0.0, 0.0)
    for split in splits:
        total = total + split
    return total
