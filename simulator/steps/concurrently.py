"""Step kind ``concurrently``: Run the nested steps at the same time (e.g. simultaneous session
initiation).

One module per kind (:mod:`simulator.steps`): the body's JSON Schema, how the loader builds
the model, how the executor runs it.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from simulator.scenario.model import Concurrently, Step
from simulator.steps import StepKind, register

if TYPE_CHECKING:
    from simulator.executor import Execution
    from simulator.scenario.loader import Builder, PathT, Validation

SCHEMA: dict[str, Any] = {"type": "array", "minItems": 2, "items": {"$ref": "#/$defs/step"}}
"""The JSON Schema of the step's body (``$defs`` of the scenario schema)."""


def validate(check: Validation, body: Any, path: PathT) -> None:
    """Two or more nested steps, each validated as a step of its own."""
    if not isinstance(body, list) or len(body) < 2:
        raise check.ctx.error(
            (*path, "concurrently"), "concurrently takes a list of two or more steps"
        )
    for i, inner in enumerate(body):
        check.step(inner, (*path, "concurrently", i))


def build(builder: Builder, b: list[Any], p: PathT, c: dict[str, Any]) -> Step:
    return Concurrently(**c, steps=builder.steps(b, p))


async def run(ex: Execution, step: Concurrently) -> None:
    ex.event(step, "concurrently", f"{len(step.steps)} steps at once")
    await asyncio.gather(*(ex.dispatch_quiet(s) for s in step.steps))


register(
    StepKind(
        name="concurrently",
        model=Concurrently,
        summary=("Run the nested steps at the same time (e.g. simultaneous session initiation)."),
        schema=SCHEMA,
        build=build,
        run=run,
        validate=validate,
    )
)
