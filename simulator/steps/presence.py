"""Step kinds ``device_online``, ``device_offline``: The device reconnects its push socket and
processes what waited.

One module per kind (:mod:`simulator.steps`): the body's JSON Schema, how the loader builds
the model, how the executor runs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from simulator.scenario.model import SetOnline, Step
from simulator.steps import StepKind, device_body, register

if TYPE_CHECKING:
    from simulator.executor import Execution
    from simulator.scenario.loader import Builder, PathT

SCHEMA_DEVICE_ONLINE: dict[str, Any] = device_body()
"""The JSON Schema of the step's body (``$defs`` of the scenario schema)."""


def build_device_online(builder: Builder, b: dict[str, Any], p: PathT, c: dict[str, Any]) -> Step:
    return SetOnline(**c, device=builder.device(b["device"], (*p, "device")), online=True)


def build_device_offline(builder: Builder, b: dict[str, Any], p: PathT, c: dict[str, Any]) -> Step:
    return SetOnline(**c, device=builder.device(b["device"], (*p, "device")), online=False)


async def run(ex: Execution, step: SetOnline) -> None:
    await ex.set_online(step)


register(
    StepKind(
        name="device_online",
        model=SetOnline,
        adapter_op="live.receive",
        summary=("The device reconnects its push socket and processes what waited."),
        schema=SCHEMA_DEVICE_ONLINE,
        build=build_device_online,
        run=run,
    )
)

register(
    StepKind(
        name="device_offline",
        model=SetOnline,
        adapter_op="live.receive",
        summary=("The device closes its push socket (envelopes queue at the relay)."),
        schema=SCHEMA_DEVICE_ONLINE,
        build=build_device_offline,
        run=run,
    )
)
