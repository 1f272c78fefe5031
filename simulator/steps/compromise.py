"""Step kind ``compromise``: From here an adversary (server, network, insider, subpoena, device…)
holds its view.

One module per kind (:mod:`simulator.steps`): the body's JSON Schema, how the loader builds
the model, how the executor runs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from simulator.scenario.model import Compromise, CompromiseKind, Step
from simulator.steps import StepKind, register

if TYPE_CHECKING:
    from simulator.executor import Execution
    from simulator.scenario.loader import Builder, PathT

SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "kind": {
            "enum": [
                "server",
                "network",
                "insider",
                "subpoena",
                "device",
                "all_devices",
                "database",
            ]
        },
        "as": {"$ref": "#/$defs/id"},
        "device": {"$ref": "#/$defs/device"},
        "user": {"$ref": "#/$defs/id"},
        "org": {"$ref": "#/$defs/id"},
        "window": {"enum": ["whole_run", "until_here", "from_here"]},
        "with_wire": {"type": "boolean"},
    },
    "required": ["kind", "as"],
}
"""The JSON Schema of the step's body (``$defs`` of the scenario schema)."""


def build(builder: Builder, b: dict[str, Any], p: PathT, c: dict[str, Any]) -> Step:
    kind = CompromiseKind(b["kind"])
    name = b["as"]
    if name in builder.adversaries:
        raise builder.ctx.error((*p, "as"), f"adversary {name!r} already exists")
    device = user = org = None
    if kind is CompromiseKind.DEVICE:
        if "device" not in b:
            raise builder.ctx.error(p, "a device compromise names its 'device'")
        device = builder.device(b["device"], (*p, "device"))
    elif "device" in b:
        raise builder.ctx.error((*p, "device"), f"'device' is for kind device, not {kind.value}")
    if kind is CompromiseKind.ALL_DEVICES:
        if "user" not in b:
            raise builder.ctx.error(p, "an all_devices compromise names its 'user'")
        user = builder.user_ids(b["user"], (*p, "user"))[0]
    elif "user" in b:
        raise builder.ctx.error((*p, "user"), f"'user' is for kind all_devices, not {kind.value}")
    if "org" in b:
        if kind is not CompromiseKind.SUBPOENA:
            raise builder.ctx.error((*p, "org"), "'org' applies to kind subpoena only")
        org = b["org"]
        builder.org(org, (*p, "org"))
    comp = Compromise(
        **c,
        compromise=kind,
        name=name,
        device=device,
        user=user,
        org=org,
        window=b.get("window", "whole_run"),
        with_wire=b.get("with_wire", True),
    )
    builder.adversaries[name] = comp
    return comp


async def run(ex: Execution, step: Compromise) -> None:
    await ex.compromise(step)


register(
    StepKind(
        name="compromise",
        model=Compromise,
        summary=(
            "From here an adversary (server, network, insider, subpoena, device…) holds its view."
        ),
        schema=SCHEMA,
        build=build,
        run=run,
    )
)
