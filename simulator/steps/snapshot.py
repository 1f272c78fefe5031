"""Step kind ``snapshot``: Back up the device's whole state (keys and sessions) under 'as' (issue
15 item 4)

One module per kind (:mod:`simulator.steps`): the body's JSON Schema, how the loader builds
the model, how the executor runs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from simulator.scenario.model import Snapshot, Step
from simulator.steps import StepKind, register

if TYPE_CHECKING:
    from simulator.executor import Execution
    from simulator.scenario.loader import Builder, PathT

SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "description": "Back up the device's whole state (keys and sessions) under 'as' (issue 15 "
    "item 4)",
    "properties": {
        "device": {"$ref": "#/$defs/device"},
        "as": {"$ref": "#/$defs/id"},
        "expect": {"$ref": "#/$defs/stepExpectation"},
    },
    "required": ["device", "as"],
}
"""The JSON Schema of the step's body (``$defs`` of the scenario schema)."""


def build(builder: Builder, b: dict[str, Any], p: PathT, c: dict[str, Any]) -> Step:
    device = builder.device(b["device"], (*p, "device"))
    if b["as"] in builder.snapshots:
        raise builder.ctx.error((*p, "as"), f"snapshot {b['as']!r} is already taken")
    builder.snapshots[b["as"]] = device
    return Snapshot(**c, device=device, name=b["as"])


async def run(ex: Execution, step: Snapshot) -> None:
    await ex.snapshot(step)


register(
    StepKind(
        name="snapshot",
        model=Snapshot,
        adapter_op="live.state.export",
        summary=(
            "Back up the device's whole state (keys and sessions) under 'as' (issue 15 item 4)"
        ),
        schema=SCHEMA,
        build=build,
        run=run,
    )
)
