"""Step kind ``remove_device``: Remove a device at the relay (its user's other devices stop
encrypting to it).

One module per kind (:mod:`simulator.steps`): the body's JSON Schema, how the loader builds
the model, how the executor runs it.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from simulator.scenario.model import RemoveDevice, Step
from simulator.steps import StepKind, device_body, register

if TYPE_CHECKING:
    from simulator.executor import Execution
    from simulator.scenario.loader import Builder, PathT

SCHEMA: dict[str, Any] = device_body()
"""The JSON Schema of the step's body (``$defs`` of the scenario schema)."""


def build(builder: Builder, b: dict[str, Any], p: PathT, c: dict[str, Any]) -> Step:
    ref = builder.device(b["device"], (*p, "device"))
    builder.devices.discard(ref)
    return RemoveDevice(**c, device=ref)


async def run(ex: Execution, step: RemoveDevice) -> None:
    await ex.snapshot_keys(step.device)
    if (adapter := ex.adapter(step.device)) is not None:  # live.remove (contract §5)
        await adapter.remove()
        del ex.adapters[adapter.address]
    else:
        await ex.fleet.account(step.device.user).remove_device(step.device.device)
    ex.online.pop(str(step.device), None)
    with contextlib.suppress(ValueError):
        ex.cast[step.device.user].remove(step.device.device)
    ex.event(step, "remove_device", f"{step.device} removed")


register(
    StepKind(
        name="remove_device",
        model=RemoveDevice,
        adapter_op="live.remove",
        summary=("Remove a device at the relay (its user's other devices stop encrypting to it)."),
        schema=SCHEMA,
        build=build,
        run=run,
    )
)
