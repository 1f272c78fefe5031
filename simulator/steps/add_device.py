"""Step kind ``add_device``: Install a new device for an existing user (login, keys, push socket).

One module per kind (:mod:`simulator.steps`): the body's JSON Schema, how the loader builds
the model, how the executor runs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from simulator.scenario.model import AddDevice, Step
from simulator.steps import StepKind, device_body, register

if TYPE_CHECKING:
    from simulator.executor import Execution
    from simulator.scenario.loader import Builder, PathT

SCHEMA: dict[str, Any] = device_body()
"""The JSON Schema of the step's body (``$defs`` of the scenario schema)."""


def build(builder: Builder, b: dict[str, Any], p: PathT, c: dict[str, Any]) -> Step:
    ref = builder.device(b["device"], (*p, "device"), existing=False)
    if ref in builder.devices:
        raise builder.ctx.error((*p, "device"), f"device {ref} already exists")
    builder.devices.add(ref)
    builder.ever_devices.add(ref)
    return AddDevice(**c, device=ref)


async def run(ex: Execution, step: AddDevice) -> None:
    await ex.install(step.device)
    ex.cast.setdefault(step.device.user, []).append(step.device.device)
    ex.event(step, "add_device", f"{step.device} added")


register(
    StepKind(
        name="add_device",
        model=AddDevice,
        adapter_op="live.device.create",
        summary=("Install a new device for an existing user (login, keys, push socket)."),
        schema=SCHEMA,
        build=build,
        run=run,
    )
)
