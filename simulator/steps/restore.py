"""Step kind ``restore``: Roll the device back to an earlier snapshot of its own state ('Bad MAC
after restore'), or ('onto') put that snapshot on another device of the same user: a clone

One module per kind (:mod:`simulator.steps`): the body's JSON Schema, how the loader builds
the model, how the executor runs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from simulator.scenario.model import Restore, Step
from simulator.steps import StepKind, register

if TYPE_CHECKING:
    from simulator.executor import Execution
    from simulator.scenario.loader import Builder, PathT

SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "description": "Roll the device back to an earlier snapshot of its own state ('Bad MAC "
    "after restore'), or ('onto') put that snapshot on another device of the "
    "same user: a clone",
    "properties": {
        "device": {"$ref": "#/$defs/device"},
        "from": {"$ref": "#/$defs/id"},
        "onto": {"$ref": "#/$defs/device"},
        "expect": {"$ref": "#/$defs/stepExpectation"},
    },
    "required": ["device", "from"],
}
"""The JSON Schema of the step's body (``$defs`` of the scenario schema)."""


def build(builder: Builder, b: dict[str, Any], p: PathT, c: dict[str, Any]) -> Step:
    device = builder.device(b["device"], (*p, "device"))
    if builder.snapshots.get(b["from"]) != device:
        raise builder.ctx.error(
            (*p, "from"), f"no earlier snapshot of {device} is named {b['from']!r}"
        )
    onto = builder.device(b["onto"], (*p, "onto")) if "onto" in b else None
    if onto is not None and (onto.user != device.user or onto == device):
        raise builder.ctx.error((*p, "onto"), "a clone goes onto another device of the same user")
    return Restore(**c, device=device, name=b["from"], onto=onto)


async def run(ex: Execution, step: Restore) -> None:
    await ex.restore(step)


register(
    StepKind(
        name="restore",
        model=Restore,
        adapter_op="live.state.import",
        summary=(
            "Roll the device back to an earlier snapshot of its own state ('Bad MAC after "
            "restore'), or ('onto') put that snapshot on another device of the same user: a "
            "clone"
        ),
        schema=SCHEMA,
        build=build,
        run=run,
    )
)
