"""Step kind ``rotate_spk``: Publish a new signed prekey, keeping the previous private SPK or not.

One module per kind (:mod:`simulator.steps`): the body's JSON Schema, how the loader builds
the model, how the executor runs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from simulator.scenario.model import RotateSpk, Step
from simulator.steps import StepKind, device_body, register

if TYPE_CHECKING:
    from simulator.executor import Execution
    from simulator.scenario.loader import Builder, PathT

SCHEMA: dict[str, Any] = device_body(keep_previous={"type": "boolean"})
"""The JSON Schema of the step's body (``$defs`` of the scenario schema)."""


def build(builder: Builder, b: dict[str, Any], p: PathT, c: dict[str, Any]) -> Step:
    return RotateSpk(
        **c,
        device=builder.device(b["device"], (*p, "device")),
        keep_previous=b.get("keep_previous", True),
    )


async def run(ex: Execution, step: RotateSpk) -> None:
    if (adapter := ex.adapter(step.device)) is not None:  # live.spk.rotate (contract §5)
        old, new = await adapter.rotate_spk(step.keep_previous)
        ex.rotations.append((adapter.address, old, frozenset(
            (a, f"{r.sender_user_id}/{r.content.message_id}")
            for a, r in ex.fleet.received if a == adapter.address)))
        ex.event(step, "rotate_spk", f"{step.device} [{adapter.implementation}]: {old} -> "
                 f"{new} (previous {'kept' if step.keep_previous else 'deleted'})")
        return
    client = ex.client(step.device)
    old = client.device.keys.spk.key_id
    await client.rotate_spk()
    ex.rotations.append(
        (
            client.address,
            old,
            frozenset(
                (a, f"{r.sender_user_id}/{r.content.message_id}")
                for a, r in ex.fleet.received
                if a == client.address
            ),
        )
    )
    if not step.keep_previous:
        ex.register_device(client)
        client.device.keys.previous_spks.pop(old, None)
    ex.event(
        step,
        "rotate_spk",
        f"{step.device}: {old} -> "
        f"{client.device.keys.spk.key_id} (previous "
        f"{'kept' if step.keep_previous else 'deleted'})",
    )


register(
    StepKind(
        name="rotate_spk",
        model=RotateSpk,
        adapter_op="live.spk.rotate",
        summary=("Publish a new signed prekey, keeping the previous private SPK or not."),
        schema=SCHEMA,
        build=build,
        run=run,
    )
)
