"""Step kind ``broadcast``: Organisation broadcast; to: org (default) or a list of users.

One module per kind (:mod:`simulator.steps`): the body's JSON Schema, how the loader builds
the model, how the executor runs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from simulator.scenario.model import Broadcast, Step
from simulator.steps import StepKind, register

if TYPE_CHECKING:
    from simulator.executor import Execution
    from simulator.scenario.loader import Builder, PathT

SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "from": {"$ref": "#/$defs/device"},
        "to": {"oneOf": [{"const": "org"}, {"$ref": "#/$defs/users"}]},
        "label": {"$ref": "#/$defs/label"},
        "count": {"type": "integer", "minimum": 1, "maximum": 100000},
        "size": {"type": "integer", "minimum": 24, "maximum": 1048576},
        "text": {"type": "string"},
        "expect": {"$ref": "#/$defs/stepExpectation"},
    },
    "required": ["from", "label"],
    "description": "Organisation broadcast; to: org (default) or a list of users.",
}
"""The JSON Schema of the step's body (``$defs`` of the scenario schema)."""


def build(builder: Builder, b: dict[str, Any], p: PathT, c: dict[str, Any]) -> Step:
    to = b.get("to", "org")
    sender = builder.device(b["from"], (*p, "from"))
    return Broadcast(
        **c,
        sender=sender,
        to=() if to == "org" else builder.user_ids(to, (*p, "to")),
        label=builder.new_label(b["label"], (*p, "label")),
        count=b.get("count", 1),
        size=b.get("size", 64),
        text=b.get("text"),
    )


async def run(ex: Execution, step: Broadcast) -> None:
    await ex.broadcast(step)


register(
    StepKind(
        name="broadcast",
        model=Broadcast,
        adapter_op="live.broadcast",
        summary=("Organisation broadcast; to: org (default) or a list of users."),
        schema=SCHEMA,
        build=build,
        run=run,
    )
)
