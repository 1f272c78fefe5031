"""Step kind ``wait``: Advance the scenario clock by ms (sleeping for real up to
REAL_WAIT_LIMIT_S).

One module per kind (:mod:`simulator.steps`): the body's JSON Schema, how the loader builds
the model, how the executor runs it.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from simulator.external import REAL_WAIT_LIMIT_S
from simulator.scenario.model import Step, Wait
from simulator.steps import StepKind, register

if TYPE_CHECKING:
    from simulator.executor import Execution
    from simulator.scenario.loader import Builder, PathT

SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "ms": {"type": "integer", "minimum": 0},
        "expect": {"$ref": "#/$defs/stepExpectation"},
    },
    "required": ["ms"],
}
"""The JSON Schema of the step's body (``$defs`` of the scenario schema)."""


def build(builder: Builder, b: dict[str, Any], p: PathT, c: dict[str, Any]) -> Step:
    return Wait(**c, ms=b["ms"])


async def run(ex: Execution, step: Wait) -> None:
    ex.fleet.clock.advance(step.ms / 1000.0)
    await asyncio.sleep(min(step.ms / 1000.0, REAL_WAIT_LIMIT_S))
    ex.event(step, "wait", f"clock +{step.ms} ms")


register(
    StepKind(
        name="wait",
        model=Wait,
        summary=("Advance the scenario clock by ms (sleeping for real up to REAL_WAIT_LIMIT_S)."),
        schema=SCHEMA,
        build=build,
        run=run,
    )
)
