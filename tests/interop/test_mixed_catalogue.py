"""The threat and desync catalogue with devices alternating reference and Go (issue 15 item
3: ``semafore sim run scenarios/desync scenarios/threats --impl go=… --assign round-robin``):
every scenario reaches the verdict it reaches with reference devices only — the verdict its
file expects, which tests/simulator/test_scenario_catalogue_runs.py holds the reference-only
run to — or is ``unsupported`` for a reason recorded in ``UNSUPPORTED`` (never a pass on
steps an adapter cannot take), or differs for a reason recorded in ``DIFFERS``. The tables
cannot go stale: a scenario that becomes runnable (or agrees) fails until its entry goes,
one that stops being runnable (or starts to differ) fails until it is recorded."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.assignment import Implementation, assign_scenario
from simulator.executor import run_with_implementations
from simulator.impl_device import unsupported_steps
from simulator.report import Verdict
from simulator.scenario import Expectation, discover, load, loads

ROOT = Path(__file__).resolve().parents[2] / "scenarios"

UNSUPPORTED: dict[str, str] = {
    # why a scenario cannot run with its round-robin assignment (docs/simulator.md)
}

DIFFERS: dict[str, str] = {
    # runs with Go devices, but reaches another verdict than with reference devices only
}


def _params() -> list[object]:
    return [pytest.param(path, id=str(path.relative_to(ROOT).with_suffix("")))
            for path in discover([ROOT / "desync", ROOT / "threats"])]


@pytest.mark.slow
@pytest.mark.parametrize("path", _params())
def test_mixed_devices_reach_the_reference_verdict(go_adapter: Path, path: Path) -> None:
    scenario = load(path)
    key = str(path.relative_to(ROOT).with_suffix(""))
    result = run_with_implementations(
        scenario, implementations={"go": Implementation("go", str(go_adapter))},
        strategy="round-robin")
    if result.verdict is Verdict.SKIPPED:
        return  # not for the embedded relay (e.g. backend restarts), as with reference only
    if key in UNSUPPORTED:
        assert result.verdict is Verdict.UNSUPPORTED, (
            f"{key} now runs ({result.verdict.value}): remove it from UNSUPPORTED")
        return
    if key in DIFFERS:
        assert result.verdict is Verdict.FAIL, (
            f"{key} now reaches {result.verdict.value}: remove it from DIFFERS")
        return
    assert result.verdict is not Verdict.UNSUPPORTED, f"{key}: {result.unsupported} " + str(
        [a.summary for a in result.assertions if a.outcome.value == "unsupported"])
    assert set(result.implementations.values()) == {"reference", "go"}
    expected = Verdict.EXPOSED if scenario.expect is Expectation.EXPOSED else Verdict.PASS
    assert result.verdict is expected, (result.error, [
        (a.kind, a.summary, a.evidence[:3]) for a in result.assertions
        if a.outcome.value not in ("held", "exposed")], [f.describe() for f in
                                                          result.step_failures])


REPLAY_AND_BOUND = """
version: 1
name: counted
description: a replay onto and a bound over an adapter device
cites: ["SPEC §7"]
seed: 3
users:
  - {id: alice, devices: [phone]}
  - {id: bob, devices: [phone], impl: go}
steps:
  - send: {from: alice/phone, to: bob, label: a}
  - network: {fault: drop, scope: bob/phone, channel: ws, probability: 0.5}
  - replay: {message: a, times: 1}
  - assert: {mechanism: {stat: duplicates_dropped, at_most: 5}}
"""


def test_an_adapter_listing_live_stats_takes_replays_push_faults_and_bounds() -> None:
    """``live.stats`` (contract §5) is what lets an adapter device take a replay and a
    push-socket fault and be counted in an ``at_most``; without it each is unsupported."""
    scenario = loads(REPLAY_AND_BOUND)
    assignment = assign_scenario(scenario, strategy=None, names=["go"], seed=scenario.seed)
    live = frozenset({"live.device.create", "live.register", "live.send", "live.receive"})
    without = unsupported_steps(scenario, assignment, {"go": live})
    assert [w.split(" (line")[0] for w in without] == [
        "step network", "step replay", "step assert"]
    assert unsupported_steps(scenario, assignment, {"go": live | {"live.stats"}}) == []


def test_round_robin_keeps_a_clone_on_its_originals_implementation() -> None:
    """A device a ``restore`` clones takes its original's implementation (a state is its
    implementation's own format, contract §5) and is left out of the alternation, so the
    other devices still alternate."""
    scenario = load(ROOT / "desync" / "cloned-device.yaml")
    for seed in range(4):
        got = assign_scenario(scenario, strategy="round-robin", names=["go"], seed=seed)
        assert got["alice:tablet"] == got["alice:phone"]
        assert got["bob:phone"] != got["alice:phone"]
