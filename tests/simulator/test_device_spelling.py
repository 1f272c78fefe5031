"""A scenario file names a device ``user:device``, the one textual form (SPEC §2 step 6,
issue #14 item 1). Files written before that say ``user/device``: they still load, to the very
same scenario, and ``semafore sim validate`` notes each retired spelling with its line and the
form to write; the catalogue itself is written in the one form."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from semafore.protocol.address import DeviceAddress
from simulator.cli.sim import command
from simulator.scenario import Assertion, MessageSelector, ScenarioError, discover, load, loads
from simulator.scenario.loader import file_device

CATALOGUE = Path(__file__).resolve().parents[2] / "scenarios"

TEXT = """\
version: 1
name: spelling
cites: ["seed §1.1"]
users:
  - {{id: alice, devices: [phone]}}
  - {{id: bob, devices: [phone]}}
infrastructure:
  server_replicas: 2
  placement: {{{bob}: 1}}
steps:
  - add_device: {{device: {tablet}}}
  - send: {{from: {alice}, to: bob, label: m}}
  - assert: {{delivered_exactly_once: {{messages: [m], devices: [{bob}, {tablet}]}}}}
"""


def spelled(sep: str) -> str:
    return TEXT.format(alice=f"alice{sep}phone", bob=f"bob{sep}phone",
                       tablet=f"bob{sep}tablet")


def test_the_one_form_loads_without_notes() -> None:
    scenario = loads(spelled(":"))
    assert scenario.notes == ()
    assert scenario.infrastructure.placement == ((DeviceAddress("bob", "phone"), 1),)


def test_the_retired_spelling_loads_the_same_scenario_with_a_note_per_use() -> None:
    current, retired = loads(spelled(":")), loads(spelled("/"))
    assert dataclasses.replace(retired, source_digest=current.source_digest) == current
    where = [(n.line, n.key) for n in retired.notes]
    assert where == [(9, "infrastructure.placement.bob/phone"),
                     (11, "steps[0].add_device.device"), (12, "steps[1].send.from"),
                     (13, "steps[2].assert.delivered_exactly_once.devices[0]"),
                     (13, "steps[2].assert.delivered_exactly_once.devices[1]")]
    assert "write 'bob:tablet'" in retired.notes[1].message


def test_a_message_selector_names_a_device_in_either_form() -> None:
    def selector(sep: str) -> MessageSelector:
        text = spelled(":").replace(
            "{messages: [m], devices:",
            f"{{messages: {{labels: [m], from: [alice{sep}phone], to: [bob]}}, devices:")
        step = loads(text).steps[-1]
        assert isinstance(step, Assertion)
        return step.messages

    current, retired = selector(":"), selector("/")
    assert current == retired and current.senders == ("alice:phone",)


@pytest.mark.parametrize("text", ["alice", "alice:", ":phone", "alice:phone:2", "a:b/c"])
def test_a_device_in_neither_form_is_refused_by_the_schema(text: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        loads(spelled(":").replace("{from: alice:phone", f"{{from: '{text}'"))
    assert caught.value.key == "steps[1].send.from"


def test_file_device_reads_both_forms_to_one_address() -> None:
    assert file_device("bob:tablet") == file_device("bob/tablet") == DeviceAddress("bob", "tablet")


def test_the_catalogue_is_written_in_the_one_form() -> None:
    files = discover([CATALOGUE])
    assert len(files) > 30
    noted = {f.name: [str(n) for n in load(f).notes] for f in files}
    assert {name: notes for name, notes in noted.items() if notes} == {}


def test_validate_prints_each_note_and_still_passes(tmp_path: Path) -> None:
    (tmp_path / "spelling.yaml").write_text(spelled("/"))
    out = CliRunner().invoke(command, ["validate", str(tmp_path)])
    assert out.exit_code == 0, out.output
    notes = [line for line in out.output.splitlines() if line.startswith("note")]
    assert len(notes) == 5
    assert "spelling.yaml:12:" in notes[2] and "write 'alice:phone'" in notes[2]
    machine = CliRunner().invoke(command, ["validate", "--json", str(tmp_path)])
    (entry,) = json.loads(machine.output)
    assert entry["ok"] and [n["line"] for n in entry["notes"]] == [9, 11, 12, 13, 13]
    (tmp_path / "spelling.yaml").write_text(spelled(":"))
    clean = CliRunner().invoke(command, ["validate", str(tmp_path)])
    assert clean.exit_code == 0
    assert [line for line in clean.output.splitlines() if line.startswith("note")] == []
