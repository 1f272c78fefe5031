"""Locust's own distribution for the virtual devices: process roles, device slots, merged
samples (issue 16 item 1; docs/load.md "Distributed runs"). Capacity planning sizes
deployments beyond one machine (seed §3.3–3.5), so the load must come from more than one
generator process — with locust's own master/worker protocol, never a home-made coordinator.

One locust process, or a locust master with workers (``--master`` / ``--worker``), local or
on other machines. Nothing here coordinates by itself: every exchange is one of locust's
custom messages between a worker and its master (``runner.send_message`` /
``register_message``), riding on locust's own master–worker connection.

- **Device slots.** Each locust user is one device of the corpus, and no device may be online
  twice. The master (or the single local process) owns the pool of free slots; a worker's user
  asks for one when it starts and gives it back when it stops, so locust may rebalance users
  between workers (a worker added mid-search) without two sockets for one device.
- **Samples.** Every worker streams its samples to the master once a second. When the run
  stops, the master asks every worker for the rest and waits (bounded) until each answered,
  then writes one merged ``samples.csv``; each sample names its ``source`` process (``w0``,
  ``w1``… by locust's worker index, ``master``, or ``local``).
"""

# locust and gevent carry no type information:
# mypy: disable-error-code="import-untyped,no-untyped-call"
from __future__ import annotations

import heapq
import itertools
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import gevent
from gevent.event import AsyncResult

from loadtests.samples import LOCAL_SOURCE, Sample

if TYPE_CHECKING:  # importing locust monkey-patches the process for gevent: only in locust
    from locust.env import Environment

log = logging.getLogger(__name__)

CLAIM, SLOT, RELEASE = "semafore_claim", "semafore_slot", "semafore_release"
SAMPLES, FLUSH, FLUSHED = "semafore_samples", "semafore_flush", "semafore_flushed"
STREAM_EVERY = 1.0  # seconds between sample batches from a worker to the master
FLUSH_WAIT = 60.0  # seconds the master waits for every worker's last samples
CLAIM_WAIT = 60.0


class SlotsExhausted(RuntimeError):
    """More devices online than the corpus holds (the corpus is sized for the run's users)."""

    def __init__(self, size: int) -> None:
        super().__init__(f"slots: all {size} corpus devices are online")
        self.field = "slots"


class SlotPool:
    """Free device slots, lowest first (so a run's online devices are the corpus's first
    ones, as the corpus plans: one device per person first, then second devices)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.free = list(range(size))
        self.taken: set[int] = set()

    def claim(self) -> int:
        if not self.free:
            raise SlotsExhausted(self.size)
        slot = heapq.heappop(self.free)
        self.taken.add(slot)
        return slot

    def release(self, slot: int) -> None:
        if slot in self.taken:
            self.taken.remove(slot)
            heapq.heappush(self.free, slot)


def _row(s: Sample) -> list[Any]:
    return [s.t, s.type, s.name, s.ms, s.bytes, s.error, s.users, s.source]


class Node:
    """This process's part in the run: ``local``, ``master`` or ``worker``."""

    def __init__(self, environment: Environment, samples: list[Sample], slots: int) -> None:
        from locust.runners import MasterRunner, WorkerRunner  # noqa: PLC0415 (locust: importing it gevent-patches the process; SlotPool is used outside locust)

        self.environment = environment
        self.samples = samples
        runner = environment.runner
        self.role = ("master" if isinstance(runner, MasterRunner)
                     else "worker" if isinstance(runner, WorkerRunner) else "local")
        self.pool = SlotPool(slots) if self.role != "worker" else None
        self.waiting: dict[int, AsyncResult] = {}
        self.ids = itertools.count()
        self.streamed = 0
        self.flushed: set[str] = set()
        if runner is None or self.role == "local":
            return
        if self.role == "master":
            runner.register_message(CLAIM, self._on_claim)
            runner.register_message(RELEASE, self._on_release)
            runner.register_message(SAMPLES, self._on_samples)
            runner.register_message(FLUSHED, self._on_flushed)
        else:
            runner.register_message(SLOT, self._on_slot)
            runner.register_message(FLUSH, self._on_flush)

    @property
    def source(self) -> str:
        if self.role == "worker":
            runner = self.environment.runner
            return f"w{getattr(runner, 'worker_index', -1)}"
        return LOCAL_SOURCE if self.role == "local" else "master"

    # -- device slots ------------------------------------------------------------------------

    def claim(self) -> int:
        if self.pool is not None:
            return self.pool.claim()
        request = next(self.ids)
        result: AsyncResult = AsyncResult()
        self.waiting[request] = result
        self._send(CLAIM, {"id": request})
        try:
            reply = result.get(timeout=CLAIM_WAIT)
        finally:
            self.waiting.pop(request, None)
        if reply is None:
            raise SlotsExhausted(-1)
        return int(reply)

    def release(self, slot: int) -> None:
        if self.pool is not None:
            self.pool.release(slot)
        else:
            self._send(RELEASE, {"slot": slot})

    def _on_claim(self, environment: Environment, msg: Any, **_: Any) -> None:
        assert self.pool is not None
        try:
            slot: int | None = self.pool.claim()
        except SlotsExhausted:
            slot = None
        self._runner().send_message(SLOT, {"id": msg.data["id"], "slot": slot},
                                    client_id=msg.node_id)

    def _on_release(self, environment: Environment, msg: Any, **_: Any) -> None:
        if self.pool is not None:
            self.pool.release(int(msg.data["slot"]))

    def _on_slot(self, environment: Environment, msg: Any, **_: Any) -> None:
        waiting = self.waiting.get(int(msg.data["id"]))
        if waiting is not None:
            waiting.set(msg.data["slot"])

    # -- samples -----------------------------------------------------------------------------

    def stream(self) -> None:
        """A worker's loop: ship new samples to the master once a second."""
        while True:
            gevent.sleep(STREAM_EVERY)
            self.ship()

    def ship(self) -> None:
        if self.role != "worker":
            return
        end = len(self.samples)
        if end > self.streamed:
            batch = [_row(s) for s in self.samples[self.streamed:end]]
            self.streamed = end
            self._send(SAMPLES, {"rows": batch})

    def _on_samples(self, environment: Environment, msg: Any, **_: Any) -> None:
        self.samples.extend(Sample(float(r[0]), str(r[1]), str(r[2]), float(r[3]), int(r[4]),
                                   str(r[5]), int(r[6]), str(r[7])) for r in msg.data["rows"])

    def _on_flush(self, environment: Environment, msg: Any, **_: Any) -> None:
        self.ship()
        self._send(FLUSHED, {"source": self.source})

    def _on_flushed(self, environment: Environment, msg: Any, **_: Any) -> None:
        self.flushed.add(str(msg.node_id))

    def collect(self, wait: float = FLUSH_WAIT, sleep: Callable[[float], Any] = gevent.sleep
                ) -> list[str]:
        """On the master when the run stops: ask every worker for its last samples and wait
        until each has answered; return the workers that did not (their tail is missing)."""
        runner: Any = self.environment.runner  # a MasterRunner when the role is master
        if self.role != "master" or runner is None:
            return []
        ids = [client.id for client in runner.clients.all]
        self.flushed.clear()
        runner.send_message(FLUSH, {})
        deadline = time.monotonic() + wait
        while not self.flushed.issuperset(ids) and time.monotonic() < deadline:
            sleep(0.05)
        missing = sorted(set(ids) - self.flushed)
        if missing:
            log.warning("no final samples from workers %s", missing)
        return missing

    def _runner(self) -> Any:
        return self.environment.runner

    def _send(self, kind: str, data: dict[str, Any]) -> None:
        self._runner().send_message(kind, data)
