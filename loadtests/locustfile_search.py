"""The capacity search's locustfile: the same virtual devices, driven by :class:`StepShape`.

The shape raises the user count one step at a time (``SEMAFORE_LOAD_SEARCH`` holds the
:class:`~loadtests.search.SearchPlan`), judges each finished step from the live samples (on a
master: the samples its workers stream to it) and stops the run at the first failing step
or after the last one. A step the generator bound (:class:`~loadtests.samples.GeneratorGuard`)
is never a pass: on a master allowed more workers (``SEMAFORE_LOAD_MAX_WORKERS``) the shape
starts one more locust worker (``SEMAFORE_LOAD_WORKER_CMD``, locust's own ``--worker``),
waits for it to join and repeats the step; otherwise the search stops and says why. Step
start marks (and the stop reason) are written to ``steps.json`` beside the samples so the
report re-judges exactly the same windows.
"""

# locust's shape base class and event hooks carry no type information:
# mypy: disable-error-code="untyped-decorator,no-untyped-call,import-untyped"
from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import gevent
from locust import LoadTestShape, events
from locust.env import Environment
from locust.runners import MasterRunner

from loadtests import locustfile
from loadtests.locustfile import RECORDER, DeviceUser  # noqa: F401 (locust collects users here)
from loadtests.search import SearchPlan, judge_step

if hasattr(locustfile, "BroadcasterUser"):  # a broadcast profile's admin: searched with it
    BroadcasterUser = locustfile.BroadcasterUser

PLAN = SearchPlan.from_env()
MARKS_PATH = os.environ.get("SEMAFORE_LOAD_STEPS")
WORKER_CMD: list[str] = json.loads(os.environ.get("SEMAFORE_LOAD_WORKER_CMD") or "[]")
MAX_WORKERS = int(os.environ.get("SEMAFORE_LOAD_MAX_WORKERS") or 0)
JOIN_WAIT = 60.0  # seconds a newly started worker has to join the master


class StepShape(LoadTestShape):
    def __init__(self) -> None:
        super().__init__()
        self.marks: list[tuple[float, int]] = []
        self.index = -1
        self.step_started = 0.0
        self.stopped = False
        self.stop_reason = ""
        self.added: list[subprocess.Popen[bytes]] = []

    def tick(self) -> tuple[int, float] | None:
        if self.stopped:
            return None
        steps = PLAN.steps
        if self.index < 0 or time.time() - self.step_started >= PLAN.step_duration:
            if self.index >= 0:
                start, users = self.marks[-1]
                verdict = judge_step(PLAN, RECORDER.samples, users, start, time.time()).verdict
                if verdict.status == "inconclusive":
                    if not self._add_worker(verdict.reason):
                        return self._stop()
                    self._mark(users)  # the same step again, with one more generator
                    return users, PLAN.spawn_rate
                if not verdict.passed:
                    return self._stop()
            if self.index + 1 >= len(steps):
                return self._stop()
            self.index += 1
            self._mark(steps[self.index])
        return steps[self.index], PLAN.spawn_rate

    def _mark(self, users: int) -> None:
        self.step_started = time.time()
        self.marks.append((self.step_started, users))

    def _stop(self) -> tuple[int, float] | None:
        """End the search: locust stops the run when the shape returns None."""
        self.stopped = True
        return None

    def _add_worker(self, reason: str) -> bool:
        runner = self.runner
        if not isinstance(runner, MasterRunner) or not WORKER_CMD:
            self.stop_reason = (f"{reason}; one locust process and no more allowed: rerun with "
                                "--workers N (or add machines with --master / --worker)")
            return False
        have = runner.worker_count
        if have >= MAX_WORKERS:
            self.stop_reason = (f"{reason} with {have} workers, the most allowed "
                                "(--max-workers); add workers or machines (--worker "
                                "--master-host) and search again")
            return False
        log = Path(MARKS_PATH or "steps.json").with_name(f"locust-worker-added-{have}.log")
        with log.open("wb") as out:
            self.added.append(subprocess.Popen(WORKER_CMD, stdout=out, stderr=subprocess.STDOUT))
        deadline = time.monotonic() + JOIN_WAIT
        while runner.worker_count <= have and time.monotonic() < deadline:
            gevent.sleep(0.2)
        if runner.worker_count <= have:
            self.stop_reason = f"{reason}; an added worker did not join within {JOIN_WAIT:g} s"
            return False
        return True


@events.quitting.add_listener
def _write_marks(environment: Environment, **_: Any) -> None:
    _save_marks(environment)
    shape = environment.shape_class
    for worker in shape.added if isinstance(shape, StepShape) else ():
        try:  # they got locust's quit; reap them, bounded
            worker.wait(timeout=15)
        except subprocess.TimeoutExpired:
            worker.kill()


def _save_marks(environment: Environment) -> None:
    shape = environment.shape_class
    if not isinstance(shape, StepShape):
        return
    if MARKS_PATH:
        Path(MARKS_PATH).write_text(
            json.dumps({"marks": shape.marks, "end": RECORDER.end or time.time(),
                        "stopped": shape.stop_reason,
                        "workers_added": len(shape.added)}),
            encoding="utf-8",
        )


locustfile.SAVERS.append(_save_marks)
