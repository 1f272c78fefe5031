"""One cast for the executor's specification tests: an organisation with a two-device
sender, a two-device recipient and a one-device third party."""

from __future__ import annotations

import logging
import textwrap

from simulator.scenario import Scenario, loads

HEAD = """
version: 1
name: {name}
description: executor test
cites: ["seed §1.1"]
seed: {seed}
expect: {expect}
{infrastructure}organisations: [{{id: acme}}]
users:
  - {{id: alice, org: acme, devices: [phone, laptop]}}
  - {{id: bob, org: acme, devices: [phone, tablet]}}
  - {{id: carol, org: acme, devices: [phone]}}
steps:
"""


def scenario(name: str, steps: str, *, seed: int = 5, expect: str = "pass",
             relay: str | None = None) -> Scenario:
    """The cast above with ``steps`` (YAML, any indentation) as its timeline; ``relay`` (a
    YAML flow mapping) is the scenario's ``infrastructure.relay`` block when given."""
    logging.getLogger("semafore.server").setLevel(logging.ERROR)
    body = textwrap.indent(textwrap.dedent(steps), "  ")
    infrastructure = f"infrastructure: {{relay: {relay}}}\n" if relay else ""
    head = HEAD.format(name=name, seed=seed, expect=expect, infrastructure=infrastructure)
    return loads(head + body, file=f"{name}.yaml")
