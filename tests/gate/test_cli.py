"""`semafore gate` and `semafore demo` from the command line (exit codes and reports)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from semafore.cli.gate import command as gate_cli
from simulator.cli.demo import command as demo_cli

from .conftest import ROOT, faulty, reference


@pytest.fixture(autouse=True)
def in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


def test_gate_passes_the_reference_and_writes_both_reports(tmp_path: Path) -> None:
    junit, summary = tmp_path / "gate.xml", tmp_path / "gate.json"
    result = CliRunner().invoke(
        gate_cli,
        [
            "--impl",
            f"reference={reference().command}",
            "--junit",
            str(junit),
            "--json",
            str(summary),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "gate verdict: PASS" in result.output
    report = json.loads(summary.read_text())
    assert report["verdict"] == "pass"
    assert [v["file"] for v in report["vectors"]] == ["x3dh-prekey-v1", "dr-v1-interop"]
    assert ET.parse(junit).getroot().tag == "testsuites"


def test_gate_exits_1_and_names_the_failing_cases(tmp_path: Path) -> None:
    broken = faulty("hkdf", "wrong-hkdf-info")
    summary = tmp_path / "gate.json"
    junit = tmp_path / "gate.xml"
    result = CliRunner().invoke(
        gate_cli,
        [
            "--impl",
            f"{broken.name}={broken.command}",
            "--json",
            str(summary),
            "--junit",
            str(junit),
        ],
    )
    assert result.exit_code == 1
    assert "gate verdict: FAIL" in result.output
    assert "x3dh-prekey-v1:opk-ascii" in result.output
    cases = json.loads(summary.read_text())["impls"][0]["cases"]
    failed = {c["case"]: c for c in cases if c["verdict"] == "fail"}
    assert failed["x3dh-prekey-v1:no-opk"]["op"] == "x3dh.initiate"
    assert (
        failed["x3dh-prekey-v1:no-opk"]["expected"]["sk"]
        != (failed["x3dh-prekey-v1:no-opk"]["actual"]["sk"])
    )
    failures = ET.parse(junit).getroot().findall(".//testcase/failure")
    assert len(failures) == len(failed) == 5


def test_gate_rejects_bad_usage_and_bad_config(tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(gate_cli, ["--impl", "no-equals-sign"]).exit_code == 2
    dup = runner.invoke(gate_cli, ["--impl", "a=x", "--impl", "a=y"])
    assert dup.exit_code == 2
    config = tmp_path / "gate.yaml"
    config.write_text("expected_failures:\n  - impl: x\n")
    bad = runner.invoke(gate_cli, ["--config", str(config)])
    assert bad.exit_code == 2
    assert "is required" in bad.output
    empty = tmp_path / "empty"
    empty.mkdir()
    assert runner.invoke(gate_cli, ["--vectors", str(empty)]).exit_code == 2


@pytest.mark.cites("SPEC §7 r4")
def test_gate_with_an_expired_entry_exits_1(tmp_path: Path) -> None:
    config = tmp_path / "gate.yaml"
    config.write_text(
        "expected_failures:\n"
        "  - {impl: ios, case: '*', owner: me@example.org, expires: 2020-01-01, reason: old}\n"
    )
    result = CliRunner().invoke(
        gate_cli, ["--impl", f"reference={reference().command}", "--config", str(config)]
    )
    assert result.exit_code == 1
    assert "expired expected-failure entry" in result.output
    assert "me@example.org" in result.output


def test_gate_is_a_group_so_subcommands_can_be_added() -> None:
    assert hasattr(gate_cli, "add_command")
    help_text = CliRunner().invoke(gate_cli, ["--help"]).output
    assert "--impl NAME=COMMAND" in help_text


def test_demo_generates_verifies_and_gates(tmp_path: Path) -> None:
    result = CliRunner().invoke(demo_cli, [])
    assert result.exit_code == 0, result.output
    assert "identical" in result.output
    assert "DEMO PASSED" in result.output


def test_case_patterns_select_a_subset(tmp_path: Path) -> None:
    summary = tmp_path / "gate.json"
    result = CliRunner().invoke(
        gate_cli,
        ["--case", "*:max-skip", "--case", "x3dh-prekey-v1:flags-*", "--json", str(summary)],
    )
    assert result.exit_code == 0, result.output
    ran = [c["case"] for c in json.loads(summary.read_text())["impls"][0]["cases"]]
    assert ran == [
        "x3dh-prekey-v1:flags-02",
        "x3dh-prekey-v1:flags-03",
        "x3dh-prekey-v1:flags-80",
        "x3dh-prekey-v1:flags-ff",
        "dr-v1-interop:max-skip",
    ]
    assert CliRunner().invoke(gate_cli, ["--case", "nothing:*"]).exit_code == 2
