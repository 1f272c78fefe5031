"""Step kind ``reinstall``: The app is reinstalled: same address, a new identity and prekeys, no
sessions.

One module per kind (:mod:`simulator.steps`): the body's JSON Schema, how the loader builds
the model, how the executor runs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from simulator.scenario.model import Reinstall, Step
from simulator.steps import StepKind, device_body, register

if TYPE_CHECKING:
    from simulator.executor import Execution
    from simulator.scenario.loader import Builder, PathT

SCHEMA: dict[str, Any] = device_body()
"""The JSON Schema of the step's body (``$defs`` of the scenario schema)."""


def build(builder: Builder, b: dict[str, Any], p: PathT, c: dict[str, Any]) -> Step:
    return Reinstall(**c, device=builder.device(b["device"], (*p, "device")))


async def run(ex: Execution, step: Reinstall) -> None:
    adapter = ex.adapter(step.device)
    if adapter is not None:
        await adapter.reinstall()
        ex.identities[adapter.address] = adapter.identity
        ex.online[adapter.address] = True  # a fresh install is online, as a reference one
        ex.event(
            step,
            "reinstall",
            f"{step.device} [{adapter.implementation}] reinstalled with a new identity",
        )
        return
    await ex.snapshot_keys(step.device)
    account = ex.fleet.account(step.device.user)
    client = await account.reinstall_device(step.device.device)
    ex.after_install(client)
    ex.event(step, "reinstall", f"{step.device} reinstalled with a new identity")


register(
    StepKind(
        name="reinstall",
        model=Reinstall,
        adapter_op="live.reinstall",
        summary=("The app is reinstalled: same address, a new identity and prekeys, no sessions."),
        schema=SCHEMA,
        build=build,
        run=run,
    )
)
