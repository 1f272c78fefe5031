"""Step kind ``replay``: A network adversary re-injects captured envelopes of a message on the push
socket.

One module per kind (:mod:`simulator.steps`): the body's JSON Schema, how the loader builds
the model, how the executor runs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from simulator.scenario.model import Replay, Step
from simulator.steps import StepKind, register

if TYPE_CHECKING:
    from simulator.executor import Execution
    from simulator.scenario.loader import Builder, PathT

SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "message": {"$ref": "#/$defs/label"},
        "to": {"$ref": "#/$defs/devices"},
        "kind": {"enum": ["any", "smx1", "drv1"]},
        "times": {"type": "integer", "minimum": 1, "maximum": 1000},
        "expect": {"$ref": "#/$defs/stepExpectation"},
    },
    "required": ["message"],
}
"""The JSON Schema of the step's body (``$defs`` of the scenario schema)."""


def build(builder: Builder, b: dict[str, Any], p: PathT, c: dict[str, Any]) -> Step:
    to = builder.devices_of(b["to"], (*p, "to")) if "to" in b else ()
    return Replay(
        **c,
        message=builder.known_label(b["message"], (*p, "message")),
        to=to,
        frames=b.get("kind", "any"),
        times=b.get("times", 1),
    )


async def run(ex: Execution, step: Replay) -> None:
    await ex.replay(step)


register(
    StepKind(
        name="replay",
        model=Replay,
        summary=(
            "A network adversary re-injects captured envelopes of a message on the push socket."
        ),
        schema=SCHEMA,
        build=build,
        run=run,
    )
)
