"""Interleaved best-of-N timing for stateful steps (timeit-style, fair on a noisy shared box).

Each benchmark is a zero-argument *step* closure that performs one unit of work (one
encrypt+decrypt pair, one X3DH initiate+respond, one serialise+parse) and keeps its own state
between calls. :func:`measure` calibrates a block size per step, warms every step up, then runs
``rounds`` rounds; in each round every step runs one block, in the same order, with the garbage
collector off (as :mod:`timeit` does). Interleaving means a burst of load from another process
hits every contender alike instead of one. Blocks are timed on the process CPU clock by
default, so time spent preempted by other jobs on a shared machine is not charged to the
code under test (``wall`` is available). The reported figure is the best block (timeit's
convention: the minimum is the run least disturbed by the machine); the median and every
block are kept too so a reader can see the noise.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

Step = Callable[[], object]


@dataclass(frozen=True)
class Timing:
    """Microseconds per step: best block and median block over all rounds (and every block)."""

    best_us: float
    median_us: float
    rounds: int
    per_block: int
    samples_us: tuple[float, ...] = ()


@dataclass(frozen=True)
class Plan:
    """How long to measure: block target duration, number of rounds, warm-up duration, clock."""

    block_seconds: float
    rounds: int
    warmup_seconds: float
    clock: str = "cpu"


FULL = Plan(block_seconds=0.01, rounds=40, warmup_seconds=0.2)
QUICK = Plan(block_seconds=0.004, rounds=6, warmup_seconds=0.03)
SMOKE = Plan(block_seconds=0.0, rounds=2, warmup_seconds=0.0, clock="wall")


CLOCKS: dict[str, Callable[[], float]] = {
    "cpu": time.process_time,
    "wall": time.perf_counter,
}
"""``cpu`` (default) counts only the time this process ran, so another job on a shared box
preempting it does not inflate a block; ``wall`` is timeit's clock."""


def _run_block(step: Step, count: int, clock: Callable[[], float]) -> float:
    start = clock()
    for _ in range(count):
        step()
    return clock() - start


def _calibrate(step: Step, plan: Plan) -> int:
    """Smallest block that lasts ``block_seconds`` (at least 1 step)."""
    count = 1
    while True:
        elapsed = _run_block(step, count, time.perf_counter)
        if elapsed >= plan.block_seconds or count >= 1 << 20:
            return count
        if elapsed <= 0:
            count *= 10
            continue
        count = max(count * 2, int(count * plan.block_seconds / elapsed * 1.1) + 1)


def measure(
    steps: Mapping[str, Step],
    plan: Plan,
    on_round: Callable[[int], None] | None = None,
) -> dict[str, Timing]:
    """Time every step in ``steps`` with interleaved rounds; µs per step, keyed like ``steps``."""
    blocks: dict[str, int] = {}
    for name, step in steps.items():
        deadline = time.perf_counter() + plan.warmup_seconds
        step()
        while time.perf_counter() < deadline:
            step()
        blocks[name] = _calibrate(step, plan)
    clock = CLOCKS[plan.clock]
    samples: dict[str, list[float]] = {name: [] for name in steps}
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for index in range(plan.rounds):
            for name, step in steps.items():
                elapsed = _run_block(step, blocks[name], clock)
                samples[name].append(elapsed / blocks[name] * 1e6)
            gc.collect()
            if on_round is not None:
                on_round(index)
    finally:
        if gc_was_enabled:
            gc.enable()
    return {
        name: Timing(
            best_us=min(values),
            median_us=statistics.median(values),
            rounds=len(values),
            per_block=blocks[name],
            samples_us=tuple(round(value, 3) for value in values),
        )
        for name, values in samples.items()
    }
