"""Step kind ``attach``: An attachment encrypted client-side, uploaded to the object store, its key
sent end to end.

One module per kind (:mod:`simulator.steps`): the body's JSON Schema, how the loader builds
the model, how the executor runs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from simulator.scenario.model import Attach, Step
from simulator.steps import StepKind, register

if TYPE_CHECKING:
    from simulator.executor import Execution
    from simulator.scenario.loader import Builder, PathT

SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "from": {"$ref": "#/$defs/device"},
        "to": {"$ref": "#/$defs/recipients"},
        "label": {"$ref": "#/$defs/label"},
        "size": {"type": "integer", "minimum": 1, "maximum": 67108864},
        "expect": {"$ref": "#/$defs/stepExpectation"},
    },
    "required": ["from", "to", "label"],
}
"""The JSON Schema of the step's body (``$defs`` of the scenario schema)."""


def build(builder: Builder, b: dict[str, Any], p: PathT, c: dict[str, Any]) -> Step:
    step = Attach(
        **c,
        sender=builder.device(b["from"], (*p, "from")),
        to=builder.user_ids(b["to"], (*p, "to")),
        label=builder.new_label(b["label"], (*p, "label")),
        size=b.get("size", 4096),
    )
    builder.attachments.add(step.label)  # an infra step may name its blob's holder
    return step


async def run(ex: Execution, step: Attach) -> None:
    await ex.attach(step)


register(
    StepKind(
        name="attach",
        model=Attach,
        adapter_op="live.attach",
        summary=(
            "An attachment encrypted client-side, uploaded to the object store, its key sent "
            "end to end."
        ),
        schema=SCHEMA,
        build=build,
        run=run,
    )
)
