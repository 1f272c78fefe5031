"""The step-kind registry (simulator.steps, issue #14 item 1): the loader, the scenario schema,
the executor and the docs all read it, so a new step kind is one module plus its test."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulator import steps
from simulator.executor import run_scenario
from simulator.report import Verdict
from simulator.scenario import ScenarioError, loads, schema
from simulator.scenario.model import Step
from tests.simulator import throwaway_step
from tests.simulator.throwaway_step import Mark

DOCS = Path(__file__).resolve().parents[2] / "docs" / "scenarios.md"

SCENARIO = """\
version: 1
name: marked
cites: ["SPEC §3"]
users:
  - {id: alice, devices: [phone]}
  - {id: bob, devices: [phone]}
steps:
  - mark: {device: bob/phone, note: before}
  - send: {from: alice/phone, to: bob, label: m, count: 2}
  - sync: {}
  - mark: {device: bob/phone, note: after}
  - assert: {delivered_exactly_once: {messages: all}}
"""


@pytest.fixture
def mark() -> Iterator[steps.StepKind]:
    kind = steps.register(throwaway_step.KIND)
    try:
        yield kind
    finally:
        steps.unregister(kind.name)


def test_a_kind_from_one_module_is_loaded_validated_and_run(mark: steps.StepKind) -> None:
    scenario = loads(SCENARIO)
    marks = [s for s in scenario.steps if isinstance(s, Mark)]
    assert [(m.kind, m.note, str(m.device)) for m in marks] == [
        ("mark", "before", "bob:phone"), ("mark", "after", "bob:phone")]
    assert "mark" in {next(iter(alt["properties"])) for alt in schema()["$defs"]["step"]["oneOf"]}
    result = run_scenario(scenario)
    assert result.verdict is Verdict.PASS, result.error
    shown = [e.details["shown"] for e in result.timeline if e.kind == "mark"]
    assert shown == [0, 2]  # it ran where the timeline put it, against the live fleet


def test_the_new_kinds_body_is_checked_by_its_schema_and_builder(mark: steps.StepKind) -> None:
    with pytest.raises(ScenarioError) as unknown_key:
        loads(SCENARIO.replace("note: before", "note: before, colour: red"))
    assert unknown_key.value.key == "steps[0].mark.colour"
    with pytest.raises(ScenarioError) as no_device:
        loads(SCENARIO.replace("{device: bob/phone, note: before}",
                               "{device: bob/tablet, note: before}"))
    assert no_device.value.key == "steps[0].mark.device"
    assert "does not exist" in no_device.value.message


def test_an_unregistered_kind_is_an_unknown_step() -> None:
    with pytest.raises(ScenarioError) as unknown:
        loads(SCENARIO)
    assert unknown.value.key == "steps[0].mark" and "unknown step kind 'mark'" in str(unknown.value)


def test_a_kind_is_refused_when_its_model_names_another_kind() -> None:
    wrong = steps.StepKind(name="stamp", model=Mark, summary="x", schema={"type": "object"},
                           build=throwaway_step.build, run=throwaway_step.run)
    with pytest.raises(steps.StepKindError) as refused:
        steps.register(wrong)
    assert refused.value.field == "model" and "stamp" not in steps.kinds()


def test_a_name_is_registered_once() -> None:
    send = steps.kind("send")
    with pytest.raises(steps.StepKindError) as refused:
        steps.register(steps.StepKind(name="send", model=send.model, summary="again",
                                      schema=send.schema, build=send.build, run=send.run))
    assert refused.value.field == "name" and steps.kind("send") is send


def test_every_model_names_a_registered_kind_and_back() -> None:
    for name, kind in steps.kinds().items():
        assert name in kind.model.KINDS and issubclass(kind.model, Step)


def _documented_kinds() -> set[str]:
    text = DOCS.read_text(encoding="utf-8")
    table = text.split("### Steps", 1)[1].split("\n\n", 2)[1]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`([a-z_]+)`", row.split("|")[1])}


def test_docs_list_exactly_the_registered_kinds() -> None:
    assert _documented_kinds() == set(steps.kinds())
