"""Step kind ``exhaust_opks``: Claim every one-time prekey of the device(s) so later bootstraps go
OPK-less.

One module per kind (:mod:`simulator.steps`): the body's JSON Schema, how the loader builds
the model, how the executor runs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from simulator.scenario.model import ExhaustOpks, Step
from simulator.steps import StepKind, register

if TYPE_CHECKING:
    from simulator.executor import Execution
    from simulator.scenario.loader import Builder, PathT

SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "devices": {"$ref": "#/$defs/devices"},
        "replenish": {"type": "boolean"},
        "expect": {"$ref": "#/$defs/stepExpectation"},
    },
    "required": ["devices"],
}
"""The JSON Schema of the step's body (``$defs`` of the scenario schema)."""


def build(builder: Builder, b: dict[str, Any], p: PathT, c: dict[str, Any]) -> Step:
    return ExhaustOpks(
        **c,
        devices=builder.devices_of(b["devices"], (*p, "devices")),
        replenish=b.get("replenish", False),
    )


async def run(ex: Execution, step: ExhaustOpks) -> None:
    await ex.exhaust_opks(step)


register(
    StepKind(
        name="exhaust_opks",
        model=ExhaustOpks,
        summary=("Claim every one-time prekey of the device(s) so later bootstraps go OPK-less."),
        schema=SCHEMA,
        build=build,
        run=run,
    )
)
