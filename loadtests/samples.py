"""Per-request samples of a load run and the statistics the capacity report is built from.

The locust process records every request event — HTTP calls, WebSocket frames and the
send→delivered latency of each envelope — with its wall time and the number of virtual
devices online at that moment (``samples.csv``). Locust's own CSV gives whole-run
aggregates; these samples let the report slice by time (steady state, one step of a capacity
search) and by user count. Pure functions, no I/O except :func:`read_samples` /
:func:`write_samples`.
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

DELIVERED = "envelope delivered"
"""Request name of the send→delivered latency metric (request type ``WS``)."""
BACKLOG = "backlog delivered"
"""Envelopes pushed from the queue on (re)connect: sent while the device was offline."""
ENVELOPES = "ENVELOPES"
"""Sample type recording how many envelopes an accepted send/broadcast carried (``bytes``);
kept out of locust's request statistics."""
GENERATOR = "GENERATOR"
"""Sample type of a load generator process's own health, once a second: name ``CPU`` (``ms``
holds percent of one core) and ``LAG`` (``ms`` holds how late the process's event loop woke
from a one-second sleep). A window where either is high measured the generator, not the relay
(:class:`GeneratorGuard`)."""
GENERATOR_CPU = "CPU"
GENERATOR_LAG = "LAG"
META_TYPES = frozenset({ENVELOPES, GENERATOR})
SAMPLE_FIELDS = ("t", "type", "name", "ms", "bytes", "error", "users", "source")
LOCAL_SOURCE = "local"
"""``source`` of samples from a single-process run; a distributed run's workers are ``w0``,
``w1``… (locust's worker index) and its master ``master``."""


class SamplesError(ValueError):
    """``samples.csv`` is malformed; ``field`` names the column (and row)."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field


@dataclass(frozen=True)
class Sample:
    t: float
    type: str
    name: str
    ms: float
    bytes: int
    error: str  # "" when the request succeeded; else its kind, e.g. "429 rate_limited"
    users: int  # devices online in the recording process (a worker counts its own)
    source: str = LOCAL_SOURCE  # the generator process that recorded it

    @property
    def ok(self) -> bool:
        return not self.error


def write_samples(path: Path, samples: Iterable[Sample]) -> int:
    count = 0
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(SAMPLE_FIELDS)
        for s in samples:
            writer.writerow(
                [f"{s.t:.6f}", s.type, s.name, f"{s.ms:.3f}", s.bytes, s.error, s.users, s.source]
            )
            count += 1
    return count


def read_samples(path: Path) -> list[Sample]:
    out: list[Sample] = []
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None or tuple(header) != SAMPLE_FIELDS:
            raise SamplesError("header", f"expected {','.join(SAMPLE_FIELDS)}")
        for row_no, row in enumerate(reader, start=2):
            if len(row) != len(SAMPLE_FIELDS):
                raise SamplesError(f"row {row_no}", f"{len(row)} columns")
            try:
                out.append(
                    Sample(float(row[0]), row[1], row[2], float(row[3]), int(row[4]), row[5],
                           int(row[6]), row[7])
                )
            except ValueError as exc:
                raise SamplesError(f"row {row_no}", str(exc)) from exc
    return out


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of unsorted ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass(frozen=True)
class WindowStats:
    """What a planner reads off one time window of a run."""

    start: float
    end: float
    users: int
    requests: int
    failures: int
    envelopes_sent: int
    deliveries: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    errors: dict[str, int]
    generator_cpu_max: float | None = None
    generator_cpu_source: str | None = None
    generator_lag_max_ms: float | None = None
    generator_processes: int = 0

    @property
    def seconds(self) -> float:
        return max(self.end - self.start, 1e-9)

    @property
    def envelopes_per_s(self) -> float:
        return self.envelopes_sent / self.seconds

    @property
    def deliveries_per_s(self) -> float:
        return self.deliveries / self.seconds

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds

    @property
    def error_rate(self) -> float:
        return self.failures / self.requests if self.requests else 0.0

    def to_dict(self) -> dict[str, object]:
        return {
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "seconds": round(self.seconds, 3),
            "users": self.users,
            "requests": self.requests,
            "failures": self.failures,
            "error_rate": round(self.error_rate, 6),
            "envelopes_sent": self.envelopes_sent,
            "envelopes_per_s": round(self.envelopes_per_s, 2),
            "deliveries": self.deliveries,
            "deliveries_per_s": round(self.deliveries_per_s, 2),
            "requests_per_s": round(self.requests_per_s, 2),
            "latency_ms": {"p50": self.p50_ms, "p95": self.p95_ms, "p99": self.p99_ms},
            "errors": dict(self.errors),
            "generator_cpu_max_percent": self.generator_cpu_max,
            "generator_cpu_max_process": self.generator_cpu_source,
            "generator_loop_lag_max_ms": self.generator_lag_max_ms,
            "generator_processes": self.generator_processes,
        }



def window_stats(
    samples: Sequence[Sample],
    start: float,
    end: float,
    envelopes: Sequence[tuple[float, int]],
    users: int | None = None,
) -> WindowStats:
    """Stats for samples with ``start <= t < end``; ``envelopes`` are (t, count) of envelopes
    the relay accepted (each successful send/broadcast reports how many it carried);
    ``users`` is the window's online device count when the caller knows it (a search step, a
    run's target), else the largest count a sample recorded."""
    chosen = [s for s in samples if start <= s.t < end and s.type not in META_TYPES]
    health = [s for s in samples if start <= s.t < end and s.type == GENERATOR]
    cpu = [s for s in health if s.name == GENERATOR_CPU]
    lag = [s.ms for s in health if s.name == GENERATOR_LAG]
    hottest = max(cpu, key=lambda s: s.ms, default=None)
    latencies = [s.ms for s in chosen if s.name == DELIVERED and s.ok]
    errors = Counter(f"{s.type} {s.name}: {s.error}" for s in chosen if not s.ok)
    sent = sum(n for t, n in envelopes if start <= t < end)
    deliveries = sum(1 for s in chosen if s.name in (DELIVERED, BACKLOG) and s.ok)
    if users is None:
        users = max((s.users for s in chosen), default=0)
    return WindowStats(
        start=start,
        end=end,
        users=users,
        requests=sum(1 for s in chosen if s.name not in (DELIVERED, BACKLOG)),
        failures=sum(1 for s in chosen if not s.ok),
        envelopes_sent=sent,
        deliveries=deliveries,
        p50_ms=_round(percentile(latencies, 50)),
        p95_ms=_round(percentile(latencies, 95)),
        p99_ms=_round(percentile(latencies, 99)),
        errors=dict(errors),
        generator_cpu_max=round(hottest.ms, 1) if hottest else None,
        generator_cpu_source=hottest.source if hottest else None,
        generator_lag_max_ms=round(max(lag), 1) if lag else None,
        generator_processes=len({s.source for s in health}),
    )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def envelope_counts(samples: Sequence[Sample]) -> list[tuple[float, int]]:
    """Envelopes accepted by the relay, from successful send samples (their ``bytes`` field
    carries the envelope count for the send and broadcast request names)."""
    return [(s.t, s.bytes) for s in samples if s.ok and s.type == ENVELOPES]


PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"


@dataclass(frozen=True)
class Verdict:
    """A window's verdict: ``pass`` (within the objective), ``fail`` (the relay broke it) or
    ``inconclusive`` (the window measured something else, e.g. a saturated generator)."""

    status: str
    reason: str

    @property
    def passed(self) -> bool:
        return self.status == PASS

    @property
    def label(self) -> str:
        return PASS if self.passed else f"{self.status}: {self.reason}"


@dataclass(frozen=True)
class GeneratorGuard:
    """When a window measured the load generator rather than the relay (issue 16 item 1).

    ``max_cpu_percent``: any generator process above this share of one core (locust runs one
    gevent loop per process, so one core is its ceiling; 85 % leaves the margin where its own
    scheduling starts to delay sends and receipts). ``max_loop_lag_ms``: a process whose event
    loop woke this late from a one-second sleep started its devices' tasks and read their
    pushed envelopes that late — the generator, not the relay, limited the rate and inflated
    the latencies."""

    max_cpu_percent: float = 85.0
    max_loop_lag_ms: float = 100.0

    def check(self, stats: WindowStats) -> str | None:
        """The reason the window is generator-bound, or None."""
        if stats.generator_cpu_max is not None and stats.generator_cpu_max > self.max_cpu_percent:
            return (f"generator-bound: process {stats.generator_cpu_source} at "
                    f"{stats.generator_cpu_max:.1f} % of a core (limit {self.max_cpu_percent:g} %)")
        if (stats.generator_lag_max_ms is not None
                and stats.generator_lag_max_ms > self.max_loop_lag_ms):
            return (f"generator-bound: event loop {stats.generator_lag_max_ms:.0f} ms late "
                    f"(limit {self.max_loop_lag_ms:g} ms)")
        return None


def judge(
    stats: WindowStats,
    p99_threshold_ms: float,
    max_error_rate: float,
    guard: GeneratorGuard | None = None,
) -> Verdict:
    """Whether one step of a capacity search is still within the service objective. A
    generator-bound window is ``inconclusive`` whatever its figures: it is never a pass."""
    bound = (guard or GeneratorGuard()).check(stats)
    if bound:
        return Verdict(INCONCLUSIVE, bound)
    if stats.requests == 0:
        return Verdict(FAIL, "no requests completed in the window")
    if stats.error_rate > max_error_rate:
        return Verdict(
            FAIL, f"error rate {stats.error_rate:.4%} above {max_error_rate:.4%}"
        )
    if stats.p99_ms is None:
        return Verdict(FAIL, "no envelope was delivered in the window")
    if stats.p99_ms > p99_threshold_ms:
        return Verdict(FAIL, f"p99 delivery {stats.p99_ms:.1f} ms above {p99_threshold_ms:g} ms")
    return Verdict(PASS, "within objective")
