"""Step kind ``read_receipt``: The device sends read receipts for the labelled messages to their
senders.

One module per kind (:mod:`simulator.steps`): the body's JSON Schema, how the loader builds
the model, how the executor runs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from simulator.scenario.model import ReadReceipt, Step
from simulator.steps import StepKind, register

if TYPE_CHECKING:
    from simulator.executor import Execution
    from simulator.scenario.loader import Builder, PathT

SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "device": {"$ref": "#/$defs/device"},
        "message": {"$ref": "#/$defs/label"},
        "expect": {"$ref": "#/$defs/stepExpectation"},
    },
    "required": ["device", "message"],
}
"""The JSON Schema of the step's body (``$defs`` of the scenario schema)."""


def build(builder: Builder, b: dict[str, Any], p: PathT, c: dict[str, Any]) -> Step:
    return ReadReceipt(
        **c,
        device=builder.device(b["device"], (*p, "device")),
        message=builder.known_label(b["message"], (*p, "message")),
    )


async def run(ex: Execution, step: ReadReceipt) -> None:
    await ex.receipt(step)


register(
    StepKind(
        name="read_receipt",
        model=ReadReceipt,
        adapter_op="live.receipt",
        summary=("The device sends read receipts for the labelled messages to their senders."),
        schema=SCHEMA,
        build=build,
        run=run,
    )
)
