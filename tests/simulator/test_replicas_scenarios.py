"""Scenario files that run several relay replicas: the ``infrastructure:`` block, ``replica:``
on server faults (checked against the deployment at load time), and the executor running
kill, stop, start, pause and unpause on one replica (issue 5; seed §3.4)."""

from __future__ import annotations

from pathlib import Path

import pytest

from semafore.deploy.testing import unavailable
from semafore.protocol.address import DeviceAddress
from simulator.executor import run_scenario
from simulator.report import Outcome, Verdict
from simulator.report.model import reason
from simulator.scenario import Infra, ScenarioError, load, loads

HEAD = """version: 1
name: replicas
cites: ["seed §3.4"]
seed: 5
{infrastructure}
users:
  - {{id: alice, devices: [phone]}}
  - {{id: bob, devices: [phone, laptop]}}
steps:
  - send: {{from: alice/phone, to: bob, label: hello}}
{steps}
  - assert: {{delivered_exactly_once: {{messages: all}}}}
"""


def scenario(steps: str, infrastructure: str = "") -> str:
    return HEAD.format(infrastructure=infrastructure, steps=steps)


def rejected(text: str) -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        loads(text, file="replicas.yaml")
    return info.value


def test_without_an_infrastructure_block_a_scenario_runs_one_replica() -> None:
    s = loads(scenario("  - infra: {action: restart, target: server}"))
    assert s.infrastructure.server_replicas == 1 and s.infrastructure.placement == ()
    step = s.steps[1]
    assert isinstance(step, Infra) and step.replica is None  # every replica


def test_replicas_and_placement_are_read() -> None:
    s = loads(scenario("  - infra: {action: kill, target: server, replica: 1}",
                       "infrastructure: {server_replicas: 3, placement: {bob/phone: 2}}"))
    assert s.infrastructure.server_replicas == 3
    assert s.infrastructure.placement == ((DeviceAddress("bob", "phone"), 2),)
    assert s.infrastructure.pins() == {"bob:phone": 2}
    step = s.steps[1]
    assert isinstance(step, Infra) and step.replica == 1


def test_a_replica_beyond_the_deployment_names_file_line_and_key() -> None:
    err = rejected(scenario("  - infra: {action: kill, target: server, replica: 5}",
                            "infrastructure: {server_replicas: 2}"))
    assert err.file == "replicas.yaml"
    assert err.line == 11
    assert err.key == "steps[1].infra.replica"
    assert "replica 5 does not exist" in err.message and "2 server replica(s)" in err.message
    assert str(err).startswith("replicas.yaml:11:")


def test_a_replica_on_a_one_replica_scenario_is_rejected() -> None:
    err = rejected(scenario("  - infra: {action: pause, target: server, replica: 1}"))
    assert err.key == "steps[1].infra.replica" and "numbered 0-0" in err.message


def test_replica_is_for_the_server_only() -> None:
    err = rejected(scenario("  - infra: {action: stop, target: redis, replica: 0}"))
    assert err.key == "steps[1].infra.replica" and "target server only" in err.message


@pytest.mark.parametrize(
    ("infrastructure", "key", "fragment"),
    [
        ("infrastructure: {server_replicas: 0}", "infrastructure.server_replicas",
         "less than the minimum"),
        ("infrastructure: {server_replicas: 2, zones: 3}", "infrastructure.zones",
         "unknown key 'zones'"),
        ("infrastructure: {server_replicas: 2, placement: {carol/phone: 0}}",
         "infrastructure.placement.carol/phone", "never installed"),
        ("infrastructure: {server_replicas: 2, placement: {bob/phone: 2}}",
         "infrastructure.placement.bob/phone", "replica 2 does not exist"),
        ("infrastructure: {placement: {bob: 0}}", "infrastructure.placement", "bob"),
    ],
)
def test_malformed_infrastructure_blocks(infrastructure: str, key: str, fragment: str) -> None:
    err = rejected(scenario("  - sync: {}", infrastructure))
    assert err.key == key, err
    assert fragment in err.message, err
    assert err.line is not None


def _run(text: str) -> tuple[Verdict, list[str], dict[str, int]]:
    result = run_scenario(loads(text, file="replicas.yaml"))
    problems = [f"line {a.line} {a.kind}: {a.outcome.value} {a.summary} {a.evidence[:3]}"
                for a in result.assertions if a.outcome is not Outcome.HELD]
    if result.error:
        problems.append(result.error)
    return result.verdict, problems, dict(result.stats)


def test_stopping_every_replica_in_turn_loses_nothing() -> None:
    verdict, problems, stats = _run(scenario(
        """  - sync: {}
  - infra: {action: stop, target: server, replica: 0}
  - send: {from: alice/phone, to: bob, label: on-one}
  - sync: {}
  - infra: {action: start, target: server, replica: 0}
  - infra: {action: stop, target: server, replica: 1}
  - send: {from: bob/laptop, to: alice, label: on-the-other}
  - sync: {}
  - infra: {action: restart, target: server}
  - send: {from: alice/phone, to: bob, label: after}
  - sync: {}""",
        "infrastructure: {server_replicas: 2}"))
    assert verdict is Verdict.PASS, problems
    assert stats["server_replicas"] == 2 and stats["replica_starts"] == 5  # 2 + 1 + 2
    assert stats["reconnects"] > 0  # devices of the stopped replicas really failed over


def test_a_paused_replica_holds_deliveries_until_unpause() -> None:
    verdict, problems, _ = _run(scenario(
        """  - sync: {}
  - infra: {action: pause, target: server, replica: 1}
  - send: {from: alice/phone, to: bob, label: held}
  - sync: {devices: [bob/laptop]}
  - assert: {not_delivered: {messages: [held], devices: [bob/phone]}}
  - infra: {action: unpause, target: server, replica: 1}
  - sync: {}""",
        "infrastructure: {server_replicas: 2, placement: "
        "{alice/phone: 0, bob/laptop: 0, bob/phone: 1}}"))
    assert verdict is Verdict.PASS, problems


def test_unpausing_a_running_replica_is_a_fault_that_never_fired() -> None:
    """Unpausing a running replica changes nothing: the verdict is ``error`` and the fault
    report names the replica and why (issue #11, "faults prove they fired")."""
    result = run_scenario(loads(scenario("  - infra: {action: unpause, target: server, "
                                         "replica: 1}", "infrastructure: {server_replicas: 2}")))
    assert result.verdict is Verdict.ERROR
    assert [f.fired for f in result.faults] == [False]
    assert "replica-1 is running, not paused" in result.faults[0].description
    assert "never fired" in reason(result)


CATALOGUE = Path(__file__).resolve().parents[2] / "scenarios" / "desync"


@pytest.mark.slow
@pytest.mark.backend
@pytest.mark.parametrize("name", ["replica-killed-mid-delivery", "replica-paused-then-unpaused"])
def test_replica_scenarios_pass_on_local_backends(name: str) -> None:
    """The same files on real redis-server, weed and FerretDB: each replica then has its own
    Redis pub/sub push hub (what production replicas use). Skips locally without the
    binaries, fails in CI."""
    result = run_scenario(load(CATALOGUE / f"{name}.yaml"), provider="local")
    if result.error and ("not installed" in result.error or "Unavailable" in result.error):
        unavailable(result.error.splitlines()[0])
    problems = [f"line {a.line} {a.kind}: {a.outcome.value} {a.summary} {a.evidence[:3]}"
                for a in result.assertions if a.outcome is not Outcome.HELD]
    assert result.verdict is Verdict.PASS, (result.error, problems)


def test_a_replica_kill_replays_byte_for_byte_under_the_same_seed() -> None:
    """Assignment, failover order and back-off all derive from the seed: two runs send the
    same envelopes (the transcript digest) and place the devices alike."""
    scenario_file = load(CATALOGUE / "replica-killed-mid-delivery.yaml")
    runs = [run_scenario(scenario_file) for _ in range(2)]
    for result in runs:
        assert result.verdict is Verdict.PASS, result.error
    digests = [[e.details["sha256"] for e in r.timeline if e.kind == "transcript"] for r in runs]
    placements = [[e.details["placement"] for e in r.timeline if e.kind == "replicas"]
                  for r in runs]
    assert digests[0] == digests[1] and len(digests[0]) == 1
    assert placements[0] == placements[1] == ["alice:phone=0, bob:phone=1, bob:laptop=0"]
