"""The second, independent implementation (Go, written from SPEC.md alone) in the interop gate.

The gate runs every pinned vector against the reference adapter and the Go adapter and must
report zero divergences for both; the Go module's own unit tests run from here too, so one
``pytest -m interop`` covers the whole second implementation.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from semafore.gate.cases import GateCase, cases_for
from semafore.gate.config import GateConfig
from semafore.gate.runner import Impl, run_gate
from semafore.gate.verdict import Verdict
from semafore.gate.wycheproof import wycheproof_cases
from semafore.vectors.files import load_documents

from .conftest import GO_ADAPTER_DIR, ROOT, Adapter, go_tool

# A cold Go build (toolchain std cache empty) takes ~1 min of wall time on a loaded 2-core CI
# runner and `go test` compiles its own binaries: allow more than the suite default.
pytestmark = [pytest.mark.interop, pytest.mark.timeout(900)]

WYCHEPROOF = Path(
    os.environ.get("SEMAFORE_WYCHEPROOF_DIR") or ROOT.parent / "shared" / "wycheproof"
)
REFERENCE = " ".join(shlex.quote(a) for a in (sys.executable, "-m", "semafore.adapter"))


@pytest.fixture(scope="module")
def gate_cases() -> list[GateCase]:
    return cases_for(load_documents(ROOT / "vectors"))


def test_go_unit_tests_pass() -> None:
    go = go_tool()
    env = {**os.environ, "SEMAFORE_VECTORS": str(ROOT / "vectors"), "GOTOOLCHAIN": "local"}
    proc = subprocess.run(
        [go, "test", "./..."],
        cwd=GO_ADAPTER_DIR,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "FAIL" not in proc.stdout


def test_gate_passes_every_case_for_reference_and_go(
    go_adapter: Path, gate_cases: list[GateCase]
) -> None:
    report = run_gate(
        [Impl("reference", REFERENCE), Impl("go", str(go_adapter))], gate_cases, GateConfig()
    )

    divergences = {
        impl.name: [
            (r.case_id, r.verdict.value) for r in impl.results if r.verdict is not Verdict.PASS
        ]
        for impl in report.impls
    }
    assert divergences == {"reference": [], "go": []}
    assert report.passed
    go = report.impls[1]
    assert len(go.results) == len(gate_cases)
    assert go.starts == 1  # no crash, no restart
    assert go.capabilities is not None
    assert go.capabilities["name"] == "semafore-go"
    assert {op for case in gate_cases for op in case.ops} <= set(go.capabilities["ops"])


def test_go_primitives_pass_the_wycheproof_corpus(go_adapter: Path) -> None:
    """X25519, Ed25519, AES-256-GCM, HKDF and HMAC of the Go core through the gate's
    Wycheproof suite, with the same SPEC §5 mapping the reference is held to."""
    if not (WYCHEPROOF / "x25519_test.json").is_file():
        message = f"no Wycheproof corpus at {WYCHEPROOF} (set SEMAFORE_WYCHEPROOF_DIR)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    cases = wycheproof_cases(WYCHEPROOF)
    report = run_gate([Impl("go", str(go_adapter))], cases, GateConfig())

    go = report.impls[0]
    assert [(r.case_id, r.verdict.value) for r in go.results if r.verdict is not Verdict.PASS] == []
    assert len(go.results) == len(cases) > 500
    assert report.passed


@pytest.fixture(scope="module")
def ci_entry_point(go_adapter: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[
    subprocess.CompletedProcess[str], Path
]:
    """One run of interop/run-gate.sh (what CI runs): build, vectors verify, the static gate
    and the live gate, reference × go."""
    reports = tmp_path_factory.mktemp("ci-gate")
    proc = subprocess.run(
        [str(ROOT / "interop" / "run-gate.sh")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        env={
            **os.environ,
            "GATE_REPORTS": str(reports),
            "VENV": str(Path(sys.executable).parents[1]),
            "GATE_LIVE": "1",
        },
        check=False,
    )
    return proc, reports


def test_ci_entry_point_builds_and_gates_reference_and_go(
    ci_entry_point: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    proc, reports = ci_entry_point
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((reports / "gate.json").read_text())
    assert summary["verdict"] == "pass"
    assert [impl["name"] for impl in summary["impls"]] == ["reference", "go"]
    assert (reports / "gate.junit.xml").is_file()


def test_ci_entry_point_runs_the_live_matrix_reference_x_go(
    ci_entry_point: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    """The live gate runs even when vectors verify fails, so this holds on its own."""
    proc, reports = ci_entry_point
    live = json.loads((reports / "live.json").read_text())
    assert live["verdict"] == "pass", proc.stdout[-3000:] + proc.stderr[-3000:]
    assert [impl["name"] for impl in live["impls"]] == ["reference", "go"]
    cells = {(c["sender"], c["receiver"]): c["verdict"] for c in live["cells"]}
    assert cells == {(s, r): "pass" for s in ("reference", "go") for r in ("reference", "go")}
    assert live["oracle"]["ran"] and live["oracle"]["clean"]
    assert (reports / "live.junit.xml").is_file() and (reports / "live.html").is_file()


def test_gate_cli_reports_a_pass_for_both(go_adapter: Path, tmp_path: Path) -> None:
    summary_path = tmp_path / "gate.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from semafore.cli.main import main; main()",
            "gate",
            "--impl",
            f"ref={REFERENCE}",
            "--impl",
            f"go={go_adapter}",
            "--json",
            str(summary_path),
            "--junit",
            str(tmp_path / "gate.xml"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.loads(summary_path.read_text())
    assert summary["verdict"] == "pass"
    counts = {impl["name"]: impl["counts"] for impl in summary["impls"]}
    total = counts["ref"]["pass"]
    assert total > 0
    assert counts["go"] == {**counts["ref"], "pass": total}
    assert all(v == 0 for k, v in counts["go"].items() if k != "pass")


def test_capabilities_name_the_implementation_and_its_ops(go: Adapter) -> None:
    answer = go.call("capabilities")
    assert answer["ok"] is True
    result = answer["result"]
    assert isinstance(result, dict)
    assert result["name"] == "semafore-go"
    assert {"capabilities", "x3dh.initiate", "dr.decrypt", "session.digest"} <= set(result["ops"])


def test_unknown_op_is_unsupported_and_bad_lines_get_an_answer(go: Adapter) -> None:
    assert go.call("telepathy.send")["error"] == "Unsupported"
    garbage = go.raw("this is not json")
    assert garbage == {**garbage, "id": None, "ok": False, "error": "MalformedEnvelope"}
    assert go.raw("[1, 2]")["error"] == "MalformedEnvelope"
    missing = go.call("spk.sign", sik_private="00" * 32)
    assert missing["error"] == "MalformedEnvelope"
    assert "args.ik_public" in str(missing["detail"])
    assert go.call("dr.encrypt", session="s404", plaintext="")["error"] == "NoSession"
    assert go.call("capabilities")["ok"] is True  # still alive after all of that


def test_string_ids_are_echoed(go: Adapter) -> None:
    answer = go.raw(json.dumps({"id": "req-7", "op": "capabilities", "args": {}}))
    assert answer["id"] == "req-7"
    assert answer["ok"] is True
