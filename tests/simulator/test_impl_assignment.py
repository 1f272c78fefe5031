"""Which implementation backs each scenario device (issue #15 item 1, simulator.assignment)
and which steps an adapter device cannot take (simulator.impl_device.unsupported_steps)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulator.assignment import (
    REFERENCE,
    AssignmentError,
    assign,
    assign_scenario,
    implementations,
    parse_impl,
)
from simulator.impl_device import unsupported_steps
from simulator.scenario.loader import loads

DEVICES = st.lists(st.from_regex(r"[a-z]{1,6}:[a-z]{1,6}", fullmatch=True), min_size=1,
                   max_size=12, unique=True)


@given(DEVICES, st.integers(0, 2**32))
def test_the_same_seed_gives_the_same_assignment(devices: list[str], seed: int) -> None:
    first = assign(devices, strategy="round-robin", names=["go"], seed=seed)
    assert first == assign(devices, strategy="round-robin", names=["go"], seed=seed)
    assert list(first) == devices


@given(DEVICES, st.integers(0, 2**32))
def test_round_robin_alternates_reference_and_the_adapters(devices: list[str], seed: int) -> None:
    got = assign(devices, strategy="round-robin", names=["go", "ios"], seed=seed)
    cycle = [REFERENCE, "go", "ios"]
    start = cycle.index(got[devices[0]])
    assert [got[d] for d in devices] == [cycle[(start + i) % 3] for i in range(len(devices))]


def test_the_seed_picks_where_the_cycle_starts() -> None:
    devices = ["a/x", "b/x"]
    firsts = {assign(devices, strategy="round-robin", names=["go"], seed=s)["a/x"]
              for s in range(20)}
    assert firsts == {REFERENCE, "go"}


def test_a_pin_wins_and_must_name_an_available_implementation() -> None:
    got = assign(["a/x", "b/x"], strategy="go", names=["go"], seed=1, pins={"b/x": REFERENCE})
    assert got == {"a/x": "go", "b/x": REFERENCE}
    with pytest.raises(AssignmentError) as err:
        assign(["a/x"], strategy=None, names=[], seed=1, pins={"a/x": "swift"})
    assert err.value.field == "impl"


def test_a_file_assigns_named_devices_and_refuses_strangers(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("bob:phone: go\n")
    assert assign(["alice:phone", "bob:phone"], strategy=str(good), names=["go"], seed=0) == {
        "alice:phone": REFERENCE, "bob:phone": "go"}
    retired = tmp_path / "retired.yaml"  # written before issue #14 item 1: still read
    retired.write_text("bob/phone: go\n")
    assert assign(["alice:phone", "bob:phone"], strategy=str(retired), names=["go"],
                  seed=0) == {"alice:phone": REFERENCE, "bob:phone": "go"}
    bad = tmp_path / "bad.yaml"
    bad.write_text("carol:phone: go\n")
    with pytest.raises(AssignmentError, match="carol:phone"):
        assign(["alice:phone"], strategy=str(bad), names=["go"], seed=0)


@pytest.mark.parametrize(("spec", "why"), [
    ("go", "NAME=COMMAND"), ("=bin/x", "NAME=COMMAND"), ("reference=x", "in-process"),
    ("g o=x", "letters"),
])
def test_impl_flags_name_the_flag(spec: str, why: str) -> None:
    with pytest.raises(AssignmentError, match=why) as err:
        parse_impl(spec)
    assert err.value.field == "--impl"
    with pytest.raises(AssignmentError, match="twice"):
        implementations(["go=a", "go=b"])


SCENARIO = """
version: 1
name: pinned
description: devices pinned to implementations
cites: ["SPEC §7"]
expect: pass
seed: 3
users:
  - {id: alice, devices: [phone, laptop], impl: {laptop: go}}
  - {id: bob, devices: [phone], impl: go}
steps:
  - send: {from: bob/phone, to: alice, label: a}
  - broadcast: {from: bob/phone, to: [alice], label: b}
  - read_receipt: {device: alice/phone, message: a}
  - sync: {}
  - assert: {sessions_converge: {devices: [alice/phone, bob/phone]}}
  - assert: {mechanism: {stat: skipped_keys_used, at_most: 5}}
"""

LIVE = frozenset({"live.device.create", "live.register", "live.send", "live.receive",
                  "live.reinstall", "session.digest"})


def test_yaml_pins_reach_the_assignment() -> None:
    scenario = loads(SCENARIO)
    got = assign_scenario(scenario, strategy=None, names=["go"], seed=scenario.seed)
    assert got == {"alice:phone": REFERENCE, "alice:laptop": "go", "bob:phone": "go"}


def test_steps_an_adapter_cannot_take_make_the_scenario_unsupported_naming_them() -> None:
    scenario = loads(SCENARIO)
    got = assign_scenario(scenario, strategy=None, names=["go"], seed=scenario.seed)
    why = unsupported_steps(scenario, got, {"go": LIVE})
    assert any("broadcast" in w and "bob:phone [go]" in w for w in why)
    assert any("skipped_keys_used" in w for w in why)
    assert not any("read_receipt" in w for w in why)  # alice:phone is the reference
    assert unsupported_steps(scenario, dict.fromkeys(got, REFERENCE), {}) == []
    lacking = unsupported_steps(scenario, got, {"go": LIVE - {"session.digest"}})
    assert any("session.digest" in w for w in lacking)


def test_every_report_shows_each_devices_implementation() -> None:
    from rich.console import Console

    from simulator.report import ScenarioResult, render, to_html, to_junit

    result = ScenarioResult.for_scenario(loads(SCENARIO), provider="embedded")
    result.implementations = {"alice:phone": REFERENCE, "bob:phone": "go"}
    console = Console(record=True, width=200)
    render([result], console)
    assert "alice:phone=reference, bob:phone=go" in console.export_text()
    assert "bob:phone = go" in to_html([result])
    assert "implementations=alice:phone=reference,bob:phone=go" in to_junit([result])
