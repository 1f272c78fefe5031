"""What the cluster-shape scenario tests share (issue #16 item 5): the scenario text of the
loader tests (Alice streams four messages to Bob, with a ``requires``/``providers`` head and
extra steps spliced in before the delivery assertion) and the loader's refusal of one; a
catalogue scenario run on ``local`` (optionally under a sabotage) and the ``failover``
figures of its report. One copy for the Redis primary, Redis Cluster node and
replication-link tests."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest

from semafore import sabotage
from semafore.deploy.settings import ProviderKind
from semafore.deploy.testing import unavailable
from simulator.executor import run_scenario
from simulator.report.model import Outcome, ScenarioResult
from simulator.scenario import ScenarioError, load, loads

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


def run_on_local(path: Path, switch: str | None = None) -> ScenarioResult:
    """The scenario at ``path`` on the ``local`` provider, under the sabotage ``switch`` if
    given; a missing tool or backend skips locally and fails in CI (semafore.deploy.testing)."""
    with sabotage.switched_on(switch) if switch else contextlib.nullcontext():
        result = run_scenario(load(path), provider=ProviderKind.LOCAL)
    if result.error and any(name in result.error for name in (
            "ToolMissingError", "BackendUnavailableError")):
        unavailable(result.error.splitlines()[0])
    return result


def failover_of(result: ScenarioResult) -> tuple[Outcome, str, dict[str, Any]]:
    """The run's one ``failover`` assertion (outcome, summary) and its figures."""
    [outcome] = [a for a in result.assertions if a.kind == "failover"]
    [event] = [e for e in result.timeline if e.kind == "failover"]
    return outcome.outcome, outcome.summary, event.details
