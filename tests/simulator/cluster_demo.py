"""The scenario text the cluster-shape loader tests share (issue #16 item 5): Alice streams
four messages to Bob, with a ``requires``/``providers`` head and extra steps spliced in before
the delivery assertion, and the loader's refusal of such a text. One copy for the Redis
primary, Redis Cluster node and replication-link tests."""

from __future__ import annotations

import pytest

from simulator.scenario import ScenarioError, loads

DEMO = """\
version: 1
name: demo
cites: ["seed §3.3"]
{head}users:
  - {{id: alice, devices: [phone]}}
  - {{id: bob, devices: [phone]}}
steps:
  - send: {{from: alice:phone, to: bob, label: m, count: 4}}
{steps}  - assert: {{delivered_exactly_once: {{messages: all}}}}
"""


def demo(head: str, steps: str) -> str:
    """The text with ``head`` (lines before ``users``) and ``steps`` (step lines) spliced in."""
    return DEMO.format(head=head, steps=steps)


def rejected(text: str) -> ScenarioError:
    """The loader's error for ``text``; a text it accepts fails the calling test."""
    with pytest.raises(ScenarioError) as info:
        loads(text, file="demo.yaml")
    return info.value
