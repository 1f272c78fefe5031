"""The gate against the reference adapter: every vector case passes, in one process."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from semafore.gate.cases import GateCase
from semafore.gate.config import GateConfig
from semafore.gate.report import junit_xml
from semafore.gate.runner import run_gate
from semafore.gate.verdict import Verdict

from .conftest import reference


@pytest.mark.cites("SPEC §7 r2")
def test_reference_adapter_passes_every_case_in_one_process(gate_cases: list[GateCase]) -> None:
    report = run_gate([reference()], gate_cases, GateConfig())

    impl = report.impls[0]
    assert report.passed
    assert [r.case_id for r in impl.results if r.verdict is not Verdict.PASS] == []
    assert len(impl.results) == len(gate_cases)
    assert impl.starts == 1  # one long-lived adapter process for the whole run
    assert impl.capabilities is not None
    assert impl.capabilities["name"] == "semafore-reference"
    assert {op for case in gate_cases for op in case.ops} <= set(impl.capabilities["ops"])


def test_every_vector_file_and_kind_is_exercised(gate_cases: list[GateCase]) -> None:
    files = {case.file for case in gate_cases}
    assert files == {"x3dh-prekey-v1", "dr-v1-interop"}
    ops = {op for case in gate_cases for op in case.ops}
    assert ops == {
        "spk.sign",
        "x3dh.initiate",
        "x3dh.respond",
        "smx1.parse",
        "drv1.parse",
        "dr.init",
        "dr.encrypt",
        "dr.decrypt",
        "session.digest",
    }
    assert any(case.negative for case in gate_cases)


def test_reports_describe_a_passing_run(gate_cases: list[GateCase], tmp_path: Path) -> None:
    report = run_gate([reference()], gate_cases[:20], GateConfig())

    summary = json.loads(json.dumps(report.to_json()))
    assert summary["verdict"] == "pass"
    assert summary["impls"][0]["counts"]["pass"] == 20
    root = ET.fromstring(junit_xml(report))
    suite = root.find("testsuite")
    assert suite is not None
    assert suite.get("tests") == "20"
    assert suite.get("failures") == "0"
    assert suite.get("errors") == "0"
    assert len(suite.findall("testcase")) == 20
