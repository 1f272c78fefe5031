"""``ci/run-gate.sh``, the CI entry point, runs the live gate beside the static one (issue 7):
on by default on the embedded relay with the same ``--impl`` adapters, ``GATE_LIVE=0`` skips
it, and the script's exit status fails when either gate fails."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.gate.conftest import FAULTY, ROOT

SCRIPT = ROOT / "ci" / "run-gate.sh"
LIVE_REPORTS = ("live.junit.xml", "live.json", "live.html")


def run_gate(reports: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    venv = Path(sys.executable).parent.parent
    return subprocess.run(
        [str(SCRIPT), "--case", "dr-v1-interop:*", *args],  # a slice of the static gate
        env={**os.environ, "VENV": str(venv), "GATE_REPORTS": str(reports), **env},
        capture_output=True, text=True, timeout=900, check=False,
    )


def static_verdict(reports: Path) -> bool:
    """Whether vectors verify and the static gate passed (the live gate's tests must not hide
    or depend on them)."""
    vectors = json.loads((reports / "vectors.json").read_text())
    if not vectors["ok"]:
        return False
    return bool(json.loads((reports / "gate.json").read_text())["verdict"] == "pass")


def test_the_ci_gate_runs_the_live_matrix_and_writes_its_reports(tmp_path: Path) -> None:
    result = run_gate(tmp_path)
    for name in LIVE_REPORTS:
        assert (tmp_path / name).is_file(), (name, result.stderr[-2000:])
    live = json.loads((tmp_path / "live.json").read_text())
    assert live["verdict"] == "pass", live["cells"]
    assert live["relay"] == "embedded" and [i["name"] for i in live["impls"]] == ["reference"]
    assert live["oracle"]["complete"] and live["oracle"]["passed"]
    suite = ET.parse(tmp_path / "live.junit.xml").getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "0" and suite.get("errors") == "0"
    assert (tmp_path / "live.html").read_text().startswith("<!doctype html>")
    # the exit status is the conjunction of every gate
    assert result.returncode == (0 if static_verdict(tmp_path) else 1), result.stderr[-2000:]


def test_gate_live_0_skips_the_live_gate(tmp_path: Path) -> None:
    result = run_gate(tmp_path, GATE_LIVE="0")
    assert "GATE_LIVE=0: live gate not run" in result.stderr
    assert not any((tmp_path / name).exists() for name in LIVE_REPORTS)
    assert (tmp_path / "vectors.json").is_file()


@pytest.mark.slow
def test_an_impl_failing_the_live_gate_fails_the_ci_gate(tmp_path: Path) -> None:
    """An adapter that passes the vectors but has no live operations: the static gate passes,
    the live gate marks its cells unsupported, and the script exits 1."""
    command = f"{sys.executable} {FAULTY} --fault no-live"
    result = run_gate(tmp_path, "--impl", f"vectors-only={command}")
    assert result.returncode == 1, result.stderr[-2000:]
    live = json.loads((tmp_path / "live.json").read_text())
    assert [i["name"] for i in live["impls"]] == ["reference", "vectors-only"]
    verdicts = {(c["sender"], c["receiver"]): c["verdict"] for c in live["cells"]}
    assert verdicts[("reference", "reference")] == "pass"
    assert verdicts[("vectors-only", "reference")] == "unsupported"
    assert live["verdict"] == "fail"
