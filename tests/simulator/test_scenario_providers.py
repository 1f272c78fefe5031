"""Which providers a scenario runs on: ``providers:`` and the CLI's ``--provider`` read the one
list, :class:`~semafore.deploy.settings.ProviderKind` (issue #14 item 1)."""

from __future__ import annotations

import click
import pytest

from semafore.deploy.settings import ProviderKind
from simulator.cli import sim as sim_cli
from simulator.scenario import loads

HEAD = """\
version: 1
name: demo
cites: ["seed §3.3"]
{providers}users:
  - {{id: alice, devices: [phone]}}
  - {{id: bob, devices: [phone]}}
steps:
  - send: {{from: alice/phone, to: bob, label: m}}
{fault}  - assert: {{delivered_exactly_once: {{messages: all}}}}
"""


def scenario(providers: str = "", fault: str = "") -> str:
    return HEAD.format(providers=providers, fault=fault)


def test_a_file_without_providers_runs_on_every_kind() -> None:
    s = loads(scenario())
    assert s.providers == tuple(ProviderKind)
    assert all(s.runs_on(kind) is None for kind in ProviderKind)


def test_providers_are_read_as_kinds_and_others_are_refused_by_name() -> None:
    s = loads(scenario(providers="providers: [local]\n"))
    assert s.providers == (ProviderKind.LOCAL,)
    why = s.runs_on(ProviderKind.EMBEDDED)
    assert why is not None and "'embedded'" in why and "local" in why


@pytest.mark.parametrize("kind", list(ProviderKind))
def test_a_backend_fault_runs_only_where_the_provider_owns_the_backends(
        kind: ProviderKind) -> None:
    s = loads(scenario(fault="  - infra: {action: restart, target: redis}\n"))
    why = s.runs_on(kind)
    assert (why is None) is kind.owns_backend_processes
    if why is not None:
        assert "redis" in why and kind.value in why


@pytest.mark.parametrize("sub", ["run", "sabotage"])
def test_the_cli_offers_exactly_the_provider_kinds(sub: str) -> None:
    options = {p.name: p for p in sim_cli.command.commands[sub].params}
    provider = options["provider"]
    assert isinstance(provider.type, click.Choice)
    assert set(provider.type.choices) == {k.value for k in ProviderKind}
    assert provider.default == ProviderKind.EMBEDDED.value
