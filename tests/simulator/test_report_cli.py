"""``semafore sim``: validation errors name file:line:column and key; ``run`` wires loader →
executor → reports, refuses to fake results when no executor is present, and sets the exit
status from the verdicts. The executor is replaced by a stand-in here (unit test of the CLI's
own logic); the real executor runs the catalogue in tests/simulator/test_executor*.py."""

from __future__ import annotations

import json
import sys
import types
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from simulator.cli.sim import command
from simulator.report import Outcome, ScenarioResult
from simulator.scenario import Scenario, Step

GOOD = """\
# seed §1.1 test file
version: 1
name: {name}
cites: ["seed §1.1"]
providers: [{providers}]
users:
  - {{id: alice, devices: [phone]}}
  - {{id: bob, devices: [phone]}}
steps:
  - send: {{from: alice/phone, to: bob, label: m}}
  - sync: {{}}
  - assert: {{delivered_exactly_once: {{messages: all}}}}
"""


def write(tmp: Path, name: str, providers: str = "embedded, local") -> Path:
    path = tmp / f"{name}.yaml"
    path.write_text(GOOD.format(name=name, providers=providers), encoding="utf-8")
    return path


def fake_executor(monkeypatch: pytest.MonkeyPatch, outcome: Outcome) -> list[str]:
    seen: list[str] = []

    def run_scenario(
        scenario: Scenario,
        *,
        provider: str,
        seed: int | None,
        on_step: Callable[[Step], None] | None = None,
    ) -> ScenarioResult:
        result = ScenarioResult.for_scenario(scenario, provider=provider, seed=seed)
        for step in scenario.steps:
            if on_step:
                on_step(step)
            result.event(step.index * 10.0, step.kind, f"ran {step.kind}", step=step)
        for assertion in scenario.assertions():
            result.record(assertion, outcome, "stand-in")
        seen.append(f"{scenario.name}@{provider}/{seed}")
        return result

    module = types.ModuleType("simulator.executor")
    module.run_scenario = run_scenario  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "simulator.executor", module)
    return seen


def test_validate_reports_file_line_and_key(tmp_path: Path) -> None:
    good = write(tmp_path, "good")
    bad = tmp_path / "bad.yaml"
    bad.write_text(good.read_text().replace("label: m}", "label: m, colour: red}"))
    out = CliRunner().invoke(command, ["validate", "--json", str(tmp_path)])
    assert out.exit_code == 1
    entries = {Path(e["file"]).name: e for e in json.loads(out.output)}
    assert entries["good.yaml"]["ok"] is True
    assert (
        entries["bad.yaml"]["line"] == 10 and entries["bad.yaml"]["key"] == "steps[0].send.colour"
    )


def test_run_without_an_executor_fails_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "simulator.executor", None)  # import raises ImportError
    out = CliRunner().invoke(command, ["run", "--quiet", str(write(tmp_path, "good"))])
    assert out.exit_code == 2 and "executor" in out.output
    assert "pass" not in out.output


def test_run_writes_every_report_and_passes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = fake_executor(monkeypatch, Outcome.HELD)
    write(tmp_path, "one")
    write(tmp_path, "two")
    write(tmp_path, "containers-only", providers="containers")
    redis = write(tmp_path, "redis-fault")
    redis.write_text(
        redis.read_text().replace(
            "  - sync: {}", "  - infra: {action: restart, target: redis}\n  - sync: {}"
        )
    )
    (tmp_path / "broken.yaml").write_text("version: 1\nname: [\n")
    reports = tmp_path / "out"
    out = CliRunner().invoke(
        command,
        [
            "run",
            "--quiet",
            "--seed",
            "9",
            str(tmp_path),
            "--junit",
            str(reports / "r.xml"),
            "--json",
            str(reports / "r.json"),
            "--html",
            str(reports / "r.html"),
        ],
    )
    assert sorted(seen) == ["one@embedded/9", "two@embedded/9"]
    assert out.exit_code == 1, out.output  # the broken file is an error row
    doc = json.loads((reports / "r.json").read_text())
    verdicts = {Path(s["path"]).stem: s["verdict"] for s in doc["scenarios"]}
    assert verdicts == {
        "one": "pass",
        "two": "pass",
        "containers-only": "skipped",
        "redis-fault": "skipped",
        "broken": "error",
    }
    reasons = {Path(s["path"]).stem: s["reason"] for s in doc["scenarios"]}
    assert "faults redis" in reasons["redis-fault"]
    root = ET.parse(reports / "r.xml").getroot()
    assert root.get("errors") == "1" and root.get("skipped") == "2"
    assert 'id="summary"' in (reports / "r.html").read_text()


def test_run_exit_status_follows_verdicts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_executor(monkeypatch, Outcome.HELD)
    ok = CliRunner().invoke(command, ["run", "--quiet", str(write(tmp_path, "good"))])
    assert ok.exit_code == 0, ok.output
    fake_executor(monkeypatch, Outcome.VIOLATED)
    bad = CliRunner().invoke(command, ["run", "--quiet", str(write(tmp_path, "good"))])
    assert bad.exit_code == 1 and "violated" in bad.output


def test_an_executor_crash_is_that_scenarios_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = types.ModuleType("simulator.executor")

    def run_scenario(scenario: Scenario, **_: object) -> ScenarioResult:
        raise RuntimeError("relay exploded")

    module.run_scenario = run_scenario  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "simulator.executor", module)
    out = CliRunner().invoke(command, ["run", "--quiet", str(write(tmp_path, "good"))])
    assert out.exit_code == 1 and "relay exploded" in out.output
