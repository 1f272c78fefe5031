"""Capacity search: step the online device count up until the service objective breaks.

Each step holds ``users`` devices for ``step_duration`` seconds; the first ``warmup`` seconds
of a step (spawning, socket handshakes, the backlog of newcomers) are ignored and the rest
is judged (:func:`loadtests.samples.judge`): p99 send→delivered latency above the threshold
(default 250 ms) or more than 0.1 % failed requests ends the search. The *knee* is the last
step that passed — the largest load this relay sustains within the objective — and the
failing step above it is reported with the reason, so a planner sees both sides of the edge.

The locust side is :class:`StepShape` (in ``locustfile_search.py``); the report recomputes
every step from ``samples.csv`` with the same functions, so the verdicts can be audited.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from typing import Any

from loadtests.samples import (
    GeneratorGuard,
    Sample,
    Verdict,
    WindowStats,
    envelope_counts,
    judge,
    window_stats,
)

MEASURED = "measured"
"""Verdict status of a plain run's steady window: measured, not judged against an objective."""


class SearchError(ValueError):
    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field


@dataclass(frozen=True)
class SearchPlan:
    start_users: int = 10
    step_users: int = 10
    max_users: int = 200
    step_duration: float = 20.0
    warmup: float = 5.0
    p99_threshold_ms: float = 250.0
    max_error_rate: float = 0.001
    spawn_rate: float = 50.0
    max_generator_cpu: float = 85.0
    max_generator_lag_ms: float = 100.0

    def __post_init__(self) -> None:
        for name in ("start_users", "step_users", "max_users"):
            if getattr(self, name) < 1:
                raise SearchError(name, "must be >= 1")
        if self.max_users < self.start_users:
            raise SearchError("max_users", "must be >= start_users")
        if self.step_duration <= 0 or not 0 <= self.warmup < self.step_duration:
            raise SearchError("warmup", "must be >= 0 and shorter than step_duration")
        if self.p99_threshold_ms <= 0:
            raise SearchError("p99_threshold_ms", "must be > 0")
        if not 0 <= self.max_error_rate < 1:
            raise SearchError("max_error_rate", "must be in [0, 1)")
        if self.spawn_rate <= 0:
            raise SearchError("spawn_rate", "must be > 0")
        if self.max_generator_cpu <= 0:
            raise SearchError("max_generator_cpu", "must be > 0")
        if self.max_generator_lag_ms <= 0:
            raise SearchError("max_generator_lag_ms", "must be > 0")

    @property
    def guard(self) -> GeneratorGuard:
        return GeneratorGuard(self.max_generator_cpu, self.max_generator_lag_ms)

    @property
    def steps(self) -> list[int]:
        return list(range(self.start_users, self.max_users + 1, self.step_users))

    @property
    def max_seconds(self) -> float:
        return len(self.steps) * self.step_duration

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> SearchPlan:
        raw = os.environ.get("SEMAFORE_LOAD_SEARCH")
        if not raw:
            raise SearchError("SEMAFORE_LOAD_SEARCH", "not set")
        return cls(**json.loads(raw))


@dataclass(frozen=True)
class StepResult:
    users: int
    stats: WindowStats
    verdict: Verdict

    def to_dict(self) -> dict[str, Any]:
        return {
            "users": self.users,
            "verdict": self.verdict.status,
            "passed": self.verdict.passed,
            "reason": self.verdict.reason,
            **self.stats.to_dict(),
        }


def judge_step(
    plan: SearchPlan, samples: list[Sample], users: int, step_start: float, step_end: float
) -> StepResult:
    stats = window_stats(
        samples, step_start + plan.warmup, step_end, envelope_counts(samples), users
    )
    return StepResult(
        users, stats, judge(stats, plan.p99_threshold_ms, plan.max_error_rate, plan.guard)
    )


def steady_window(
    samples: list[Sample], marks: list[tuple[float, int]], end: float,
    guard: GeneratorGuard | None = None,
) -> StepResult | None:
    """A plain run's one judged window: from the moment every device was online (the
    runner's spawning-complete mark) to the end; None when the run ended before that. Its
    verdict is ``measured`` (no objective) unless the generator bound it (inconclusive)."""
    if not marks or end <= marks[0][0]:
        return None
    start, users = marks[0]
    stats = window_stats(samples, start, end, envelope_counts(samples), users)
    bound = (guard or GeneratorGuard()).check(stats)
    verdict = Verdict("inconclusive", bound) if bound else Verdict(
        MEASURED, "not judged against an objective")
    return StepResult(users, stats, verdict)


def steps_from_marks(
    plan: SearchPlan, samples: list[Sample], marks: list[tuple[float, int]], end: float
) -> list[StepResult]:
    """Re-judge every step from its start marks ``(wall time, users)``."""
    results = []
    for k, (start, users) in enumerate(marks):
        stop = marks[k + 1][0] if k + 1 < len(marks) else end
        if stop - start <= plan.warmup:
            continue  # cut short by the run's end before anything could be judged
        results.append(judge_step(plan, samples, users, start, stop))
    return results


def knee(results: list[StepResult]) -> tuple[StepResult | None, StepResult | None]:
    """(last passing step before the first step that did not pass, that step): a failing or
    inconclusive (generator-bound) step ends the search; only a pass counts towards the knee."""
    last_ok = None
    for k, result in enumerate(results):
        retried = (result.verdict.status == "inconclusive" and k + 1 < len(results)
                   and results[k + 1].users == result.users)
        if retried:
            continue  # the search added a generator and repeated this step
        if not result.verdict.passed:
            return last_ok, result
        last_ok = result
    return last_ok, None
