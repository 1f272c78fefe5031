"""Step kind ``network``: A fault on the path between clients and relay (drop, delay, duplicate,
reorder, cut, heal).

One module per kind (:mod:`simulator.steps`): the body's JSON Schema, how the loader builds
the model, how the executor runs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from simulator.scenario.model import Network, NetworkFault, Step
from simulator.steps import StepKind, register

if TYPE_CHECKING:
    from simulator.executor import Execution
    from simulator.scenario.loader import Builder, PathT

SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "fault": {"enum": ["drop", "delay", "duplicate", "reorder", "cut", "heal"]},
        "scope": {"oneOf": [{"const": "global"}, {"$ref": "#/$defs/device"}]},
        "direction": {"enum": ["up", "down", "both"]},
        "probability": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
        "count": {"type": "integer", "minimum": 1},
        "delay_ms": {"type": "integer", "minimum": 0},
        "jitter_ms": {"type": "integer", "minimum": 0},
        "window": {"type": "integer", "minimum": 2, "maximum": 10000},
        "channel": {"enum": ["ws", "http", "both"]},
        "match": {"type": "string", "pattern": "^(\\*|[A-Z]+) /[^ ]*$"},
        "expect": {"$ref": "#/$defs/stepExpectation"},
    },
    "required": ["fault"],
}
"""The JSON Schema of the step's body (``$defs`` of the scenario schema)."""


def build(builder: Builder, b: dict[str, Any], p: PathT, c: dict[str, Any]) -> Step:
    scope = b.get("scope", "global")
    ref = None if scope == "global" else builder.device(scope, (*p, "scope"))
    fault = NetworkFault(b["fault"])
    if fault is NetworkFault.DELAY and not b.get("delay_ms"):
        raise builder.ctx.error((*p, "delay_ms"), "a delay fault needs delay_ms > 0")
    channel = b.get("channel", "both")
    match = b.get("match")
    if match is not None and channel != "http":
        raise builder.ctx.error(
            (*p, "match"), "match selects HTTP requests: it needs channel: http"
        )
    if match is not None and fault in (NetworkFault.CUT, NetworkFault.HEAL):
        raise builder.ctx.error(
            (*p, "match"), f"a {fault.value} acts on whole connections, not on matched requests"
        )
    return Network(
        **c,
        fault=fault,
        scope=ref,
        direction=b.get("direction", "both"),
        probability=float(b.get("probability", 1.0)),
        count=b.get("count"),
        delay_ms=b.get("delay_ms", 0),
        jitter_ms=b.get("jitter_ms", 0),
        window=b.get("window", 2),
        channel=channel,
        match=match,
    )


async def run(ex: Execution, step: Network) -> None:
    ex.apply_network(step)


register(
    StepKind(
        name="network",
        model=Network,
        summary=(
            "A fault on the path between clients and relay (drop, delay, duplicate, reorder, "
            "cut, heal)."
        ),
        schema=SCHEMA,
        build=build,
        run=run,
    )
)
