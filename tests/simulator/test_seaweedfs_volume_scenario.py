"""The ``seaweedfs-volume`` infra target (issue #16 item 5, docs/scenarios.md, docs/backends.md
"Cluster shape"): one SeaweedFS volume server of the cluster shape, by index or as the holder of
an attachment's blob, and ``desync/seaweedfs-volume-lost-during-attachment-delivery`` run for
real on the local provider's master + three volume servers + filer.

The run tests start real weed, redis-server and FerretDB from .tools (locally a missing tool
skips them, in CI it fails them: semafore.deploy.testing). The scenario passes because every
blob has two copies (``001``); the same scenario on a cluster keeping one copy
(``SEMAFORE_SEAWEEDFS_REPLICATION=000``) must fail, naming the attachment it lost.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from semafore.deploy.errors import SettingsError
from semafore.deploy.settings import InfraSettings, Shape
from semafore.deploy.testing import unavailable
from simulator.executor import run_scenario
from simulator.report.model import Outcome, ScenarioResult, reason
from simulator.scenario import InfraTarget, ScenarioError, load, loads
from simulator.scenario.model import Infra

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "scenarios/desync/seaweedfs-volume-lost-during-attachment-delivery.yaml"

HEAD = """\
version: 1
name: demo
cites: ["seed §3.5"]
{head}users:
  - {{id: alice, devices: [phone]}}
  - {{id: bob, devices: [phone]}}
steps:
  - send: {{from: alice:phone, to: bob, label: m}}
  - attach: {{from: alice:phone, to: bob, label: photo}}
{steps}  - assert: {{delivered_exactly_once: {{messages: all}}}}
"""
CLUSTER = "providers: [local]\nrequires: {shape: cluster}\n"


def scenario(steps: str, head: str = CLUSTER) -> str:
    return HEAD.format(head=head, steps=steps)


def rejected(text: str) -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        loads(text, file="demo.yaml")
    return info.value


# -- the loader ------------------------------------------------------------------------------


@pytest.mark.parametrize("body", ["volume: 2", "holding: photo"])
def test_a_volume_server_is_named_by_index_or_by_the_attachment_it_holds(body: str) -> None:
    s = loads(scenario(f"  - infra: {{action: kill, target: seaweedfs-volume, {body}}}\n"
                       f"  - infra: {{action: start, target: seaweedfs-volume, {body}}}\n"))
    kill, start = [step for step in s.all_steps() if isinstance(step, Infra)
                   and step.target is InfraTarget.SEAWEEDFS_VOLUME]
    assert (kill.volume, kill.holding) == (start.volume, start.holding)
    assert (kill.volume, kill.holding) in ((2, None), (None, "photo"))


def test_a_volume_server_needs_the_cluster_requirement() -> None:
    err = rejected(scenario("  - infra: {action: kill, target: seaweedfs-volume, volume: 0}\n",
                            head="providers: [local]\n"))
    assert err.key == "steps[2].infra.target" and "requires: {shape: cluster}" in err.message


@pytest.mark.parametrize(("body", "key", "words"), [
    ("", "target", "exactly one of"),
    ("volume: 0, holding: photo", "target", "exactly one of"),
    ("volume: 3", "volume", "does not exist"),
    ("holding: m", "holding", "is a message, not an attachment"),
    ("holding: later", "holding", "not the label of an earlier attach step"),
])
def test_a_volume_server_that_is_not_exactly_one_existing_server_is_refused(
    body: str, key: str, words: str
) -> None:
    err = rejected(scenario(f"  - infra: {{action: kill, target: seaweedfs-volume, {body}}}\n"
                            "  - attach: {from: alice:phone, to: bob, label: later}\n"))
    assert err.key == f"steps[2].infra.{key}" and words in err.message, err


@pytest.mark.parametrize("body", ["volume: 0", "holding: photo"])
def test_volume_and_holding_belong_to_the_volume_server_target_only(body: str) -> None:
    err = rejected(scenario(f"  - infra: {{action: kill, target: seaweedfs, {body}}}\n"))
    assert err.key == f"steps[2].infra.{body.partition(':')[0]}"
    assert "seaweedfs-volume only" in err.message


def test_the_catalogue_scenario_requires_the_cluster_and_kills_the_holder() -> None:
    s = load(SCENARIO)
    assert s.requires.shape is Shape.CLUSTER
    kill, start = [step for step in s.all_steps()
                   if isinstance(step, Infra) and step.target is InfraTarget.SEAWEEDFS_VOLUME]
    assert kill.holding == start.holding == "photo"
    assert (kill.action.value, start.action.value) == ("kill", "start")


@pytest.mark.parametrize("raw", ["1", "0001", "abc", "01x"])
def test_a_malformed_replica_placement_names_the_variable(raw: str) -> None:
    with pytest.raises(SettingsError) as caught:
        InfraSettings.from_env({"SEMAFORE_SEAWEEDFS_REPLICATION": raw})
    assert caught.value.field == "SEMAFORE_SEAWEEDFS_REPLICATION"
    assert InfraSettings.from_env({}).seaweedfs_replication is None  # the cluster's 001


# -- the scenario on the local provider's cluster shape -------------------------------------


def _run(monkeypatch: pytest.MonkeyPatch, replication: str) -> ScenarioResult:
    monkeypatch.setenv("SEMAFORE_SEAWEEDFS_REPLICATION", replication)
    result = run_scenario(load(SCENARIO), provider="local")
    if result.error and any(name in result.error for name in (
            "ToolMissingError", "BackendUnavailableError")):
        unavailable(result.error.splitlines()[0])
    return result


def _delivery(result: ScenarioResult) -> tuple[Outcome, list[str]]:
    [delivered] = [a for a in result.assertions if a.kind == "delivered_exactly_once"]
    return delivered.outcome, delivered.evidence


@pytest.mark.slow
@pytest.mark.backend
@pytest.mark.timeout(600)
def test_the_holder_is_killed_and_the_attachment_still_downloads_from_the_other_copy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    result = _run(monkeypatch, "001")
    assert result.verdict.value == "pass", (result.error, reason(result),
                                            [(a.kind, a.summary) for a in result.assertions])
    kill, start = [e for e in result.timeline if e.kind == "infra"]
    assert kill.summary.startswith("kill seaweedfs-volume ") and "holding photo" in kill.summary
    # the start names the server the kill resolved (re-asked, the master would name the other
    # holder, which is running: the start would change nothing and not fire)
    assert start.summary == kill.summary.replace("kill", "start", 1)
    assert {f.fired for f in result.faults} == {True}  # it really died, and really came back
    outcome, evidence = _delivery(result)
    assert outcome is Outcome.HELD and evidence == []


@pytest.mark.slow
@pytest.mark.backend
@pytest.mark.timeout(600)
def test_with_one_copy_per_blob_the_same_kill_loses_the_attachment_and_the_run_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    result = _run(monkeypatch, "000")
    outcome, evidence = _delivery(result)
    assert outcome is Outcome.VIOLATED
    assert any(line.startswith("photo -> bob:phone: attachment not fetched back intact")
               for line in evidence), evidence
    assert result.verdict.value == "fail"
