"""Step kind ``send``: Encrypt to every device of each recipient user, plus sync copies to the
sender's other devices.

One module per kind (:mod:`simulator.steps`): the body's JSON Schema, how the loader builds
the model, how the executor runs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from simulator.scenario.model import Send, Step
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
        "count": {"type": "integer", "minimum": 1, "maximum": 100000},
        "size": {"type": "integer", "minimum": 24, "maximum": 1048576},
        "text": {"type": "string"},
        "withhold": {"type": "boolean"},
        "expect": {"$ref": "#/$defs/stepExpectation"},
    },
    "required": ["from", "to", "label"],
    "description": "Encrypt to every device of each recipient user, plus sync copies to the "
    "sender's other devices.",
}
"""The JSON Schema of the step's body (``$defs`` of the scenario schema)."""


def build(builder: Builder, b: dict[str, Any], p: PathT, c: dict[str, Any]) -> Step:
    return Send(
        **c,
        sender=builder.device(b["from"], (*p, "from")),
        to=builder.user_ids(b["to"], (*p, "to")),
        label=builder.new_label(b["label"], (*p, "label")),
        count=b.get("count", 1),
        size=b.get("size", 64),
        text=b.get("text"),
        withhold=b.get("withhold", False),
    )


async def run(ex: Execution, step: Send) -> None:
    await ex.send(step)


register(
    StepKind(
        name="send",
        model=Send,
        adapter_op="live.send",
        summary=(
            "Encrypt to every device of each recipient user, plus sync copies to the sender's "
            "other devices."
        ),
        schema=SCHEMA,
        build=build,
        run=run,
    )
)
