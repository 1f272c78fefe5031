"""A step kind that lives only in the tests: ``mark`` (tests/simulator/test_step_registry.py).

It is the proof of issue #14 item 1's "a new step kind is one file plus its test": this module
alone declares the model, the body's schema, how the loader builds it (with a cross-reference
check, as the built-in kinds do) and how the executor runs it; registering it makes the
loader, ``semafore sim schema`` and the executor know it, with no other file touched.

``mark`` records, as an event, how many messages a device has shown so far: what a scenario
author might add to pin a checkpoint in the report.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from semafore.protocol.address import DeviceAddress
from simulator.scenario.model import Step
from simulator.steps import StepKind

if TYPE_CHECKING:
    from simulator.executor import Execution
    from simulator.scenario.loader import Builder, PathT


@dataclass(frozen=True, kw_only=True)
class Mark(Step):
    """A checkpoint: ``device`` has shown this many messages here."""

    KINDS = ("mark",)

    device: DeviceAddress
    note: str


SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["device", "note"],
    "properties": {
        "device": {"$ref": "#/$defs/device"},
        "note": {"type": "string", "minLength": 1},
        "expect": {"$ref": "#/$defs/stepExpectation"},
    },
}


def build(builder: Builder, b: dict[str, Any], p: PathT, c: dict[str, Any]) -> Step:
    return Mark(**c, device=builder.device(b["device"], (*p, "device")), note=b["note"])


async def run(ex: Execution, step: Mark) -> None:
    await ex.settle()
    shown = sum(1 for address, _ in ex.fleet.received if address == str(step.device))
    ex.event(step, "mark", f"{step.note}: {step.device} has shown {shown} message(s)",
             shown=shown)


KIND = StepKind(name="mark", model=Mark, summary="A checkpoint event: what a device has shown.",
                schema=SCHEMA, build=build, run=run)
