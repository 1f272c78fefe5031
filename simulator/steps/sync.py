"""Step kind ``sync``: Every online device (or the listed ones) fetches its queue over HTTP and the
fleet settles.

One module per kind (:mod:`simulator.steps`): the body's JSON Schema, how the loader builds
the model, how the executor runs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from simulator.scenario.model import Step, Sync
from simulator.steps import StepKind, register

if TYPE_CHECKING:
    from simulator.executor import Execution
    from simulator.scenario.loader import Builder, PathT

SCHEMA: dict[str, Any] = {
    "oneOf": [
        {"type": "null"},
        {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "devices": {
                    "oneOf": [
                        {"$ref": "#/$defs/device"},
                        {
                            "type": "array",
                            "items": {"$ref": "#/$defs/device"},
                            "minItems": 1,
                            "uniqueItems": True,
                        },
                    ]
                },
                "timeout_ms": {"type": "integer", "minimum": 1},
                "expect": {"$ref": "#/$defs/stepExpectation"},
            },
        },
    ]
}
"""The JSON Schema of the step's body (``$defs`` of the scenario schema)."""


def build(builder: Builder, b: dict[str, Any], p: PathT, c: dict[str, Any]) -> Step:
    devices = builder.devices_of(b["devices"], (*p, "devices")) if "devices" in b else ()
    return Sync(**c, devices=devices, timeout_ms=b.get("timeout_ms", 30_000))


async def run(ex: Execution, step: Sync) -> None:
    await ex.fetch_queues(step, step.devices)
    missing = await ex.settle(
        step.devices, timeout=step.timeout_ms / 1000.0, idle=min(2.0, step.timeout_ms / 1000.0)
    )
    ex.event(
        step,
        "sync",
        "quiescent"
        if not missing
        else f"{sum(len(v) for v in missing.values())} envelope(s) outstanding",
        ok=True,
    )


register(
    StepKind(
        name="sync",
        model=Sync,
        adapter_op="live.receive",
        summary=(
            "Every online device (or the listed ones) fetches its queue over HTTP and the "
            "fleet settles."
        ),
        schema=SCHEMA,
        build=build,
        run=run,
    )
)
