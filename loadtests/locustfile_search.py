"""The capacity search's locustfile: the same virtual devices, driven by :class:`StepShape`.

The shape raises the user count one step at a time (``SEMAFORE_LOAD_SEARCH`` holds the
:class:`~loadtests.search.SearchPlan`), judges each finished step from the live samples and
stops the run at the first failing step or after the last one. Step start marks are written
to ``steps.json`` beside the samples so the report re-judges exactly the same windows.
"""

# locust's shape base class and event hooks carry no type information:
# mypy: disable-error-code="untyped-decorator,no-untyped-call"
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from locust import LoadTestShape, events
from locust.env import Environment

from loadtests.locustfile import RECORDER, DeviceUser  # noqa: F401 (locust collects users here)
from loadtests.search import SearchPlan, judge_step

PLAN = SearchPlan.from_env()
MARKS_PATH = os.environ.get("SEMAFORE_LOAD_STEPS")


class StepShape(LoadTestShape):
    def __init__(self) -> None:
        super().__init__()
        self.marks: list[tuple[float, int]] = []
        self.index = -1
        self.stopped = False

    def tick(self) -> tuple[int, float] | None:
        if self.stopped:
            return None
        step = int(self.get_run_time() // PLAN.step_duration)
        steps = PLAN.steps
        if step != self.index:
            if self.index >= 0:
                start, users = self.marks[-1]
                verdict = judge_step(PLAN, RECORDER.samples, users, start, time.time()).verdict
                if not verdict.passed:
                    self.stopped = True
                    return None
            if step >= len(steps):
                self.stopped = True
                return None
            self.index = step
            self.marks.append((time.time(), steps[step]))
        return steps[self.index], PLAN.spawn_rate


@events.quitting.add_listener
def _write_marks(environment: Environment, **_: Any) -> None:
    shape = environment.shape_class
    if MARKS_PATH and isinstance(shape, StepShape):
        Path(MARKS_PATH).write_text(
            json.dumps({"marks": shape.marks, "end": time.time()}), encoding="utf-8"
        )
