"""Step kind ``screenshot``: The device screenshots the conversation showing those messages and
reports it (ADR-0159).

One module per kind (:mod:`simulator.steps`): the body's JSON Schema, how the loader builds
the model, how the executor runs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from simulator.scenario.model import Screenshot, Step
from simulator.steps import StepKind, register

if TYPE_CHECKING:
    from simulator.executor import Execution
    from simulator.scenario.loader import Builder, PathT

SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["device", "message"],
    "description": "The device screenshots the conversation showing those messages and "
    "reports it (ADR-0159).",
    "properties": {
        "device": {"$ref": "#/$defs/device"},
        "message": {"$ref": "#/$defs/label"},
        "expect": {"$ref": "#/$defs/stepExpectation"},
    },
}
"""The JSON Schema of the step's body (``$defs`` of the scenario schema)."""


def build(builder: Builder, b: dict[str, Any], p: PathT, c: dict[str, Any]) -> Step:
    return Screenshot(
        **c,
        device=builder.device(b["device"], (*p, "device")),
        message=builder.known_label(b["message"], (*p, "message")),
    )


async def run(ex: Execution, step: Screenshot) -> None:
    await ex.screenshot(step)


register(
    StepKind(
        name="screenshot",
        model=Screenshot,
        adapter_op="live.screenshot",
        summary=(
            "The device screenshots the conversation showing those messages and reports it "
            "(ADR-0159)."
        ),
        schema=SCHEMA,
        build=build,
        run=run,
    )
)
