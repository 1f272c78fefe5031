"""The live interop matrix (``semafore gate live``): scripted conversations between adapters
through a real relay on a loopback port, then the plaintext-absence oracle over its stores and
logs. Deliberately broken adapters must fail exactly the cells they take part in, at the step
that exercises their bug, with a message naming the envelope and the error."""

from __future__ import annotations

import asyncio
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from semafore.cli.gate import command as gate_command
from semafore.gate.live import STEPS, LiveReport, run_live
from semafore.gate.live_report import _headline, render_html, write_junit
from semafore.gate.runner import Impl
from semafore.gate.verdict import Verdict
from tests.gate.conftest import faulty, reference


def live(*impls: Impl, timeout_s: float = 20.0) -> LiveReport:
    return asyncio.run(run_live(list(impls), "embedded", timeout_s=timeout_s))


@pytest.fixture(scope="module")
def reference_report() -> LiveReport:
    return live(reference())


def test_reference_converses_with_itself_through_every_step(reference_report: LiveReport) -> None:
    cell = reference_report.cell("reference", "reference")
    assert cell.verdict is Verdict.PASS, cell.detail
    assert cell.steps_passed == [s for s in STEPS if s != "oracle"]
    assert reference_report.passed


def test_the_oracle_scanned_the_relay_store_and_logs(reference_report: LiveReport) -> None:
    oracle = reference_report.oracle
    assert oracle["ran"] and oracle["clean"], oracle.get("hits")
    assert oracle["canaries"] >= 20  # one per message of the script
    assert oracle["bytes_by_tier"]["store"] > 0 and oracle["bytes_by_tier"]["log"] > 0
    # a relay the gate starts gives every source: the report says it was a full scan
    assert oracle["complete"] and oracle["scanned"] == ["wire", "stores", "logs"]
    assert oracle["not_scanned"] == {} and oracle["errors"] == []
    wire = oracle["sources"]["wire"]
    assert wire["items"] >= 20 and oracle["bytes_by_tier"]["wire"] == wire["bytes"]
    # the relay's log was a file, streamed as one item line by line (never held as a list
    # of lines in memory, issue #12 item 3), and all of it was read
    logs = oracle["sources"]["logs"]
    lines = int(logs["parts"]["relay.log"].rsplit(": ", 1)[1].split()[0])
    assert logs["items"] == oracle["items_by_tier"]["log"] == 1 and lines > 20
    assert oracle["bytes_by_tier"]["log"] == logs["bytes"] > 0


def test_reports_name_every_cell(reference_report: LiveReport, tmp_path: Path) -> None:
    write_junit(reference_report, tmp_path / "live.xml")
    suite = ET.parse(tmp_path / "live.xml").getroot().find("testsuite")
    assert suite is not None
    names = [case.get("name") for case in suite.iter("testcase")]
    assert names == ["reference->reference", "plaintext-absence/wire",
                     "plaintext-absence/stores", "plaintext-absence/logs"]
    assert not list(suite.iter("skipped")), "nothing is skipped when every source was scanned"
    assert suite.get("failures") == "0" and suite.get("errors") == "0"
    page = render_html(reference_report)
    assert "<script" not in page and "http" not in page.split("<body>")[0]
    assert "live interop gate: PASS" in page


BROKEN_CELLS = [
    # fault, the step that exposes it, the cells that must fail, a phrase of the error
    ("nonce-reuse", "both-directions",
     {("reference", "broken"), ("broken", "reference"), ("broken", "broken")}, "nonce reuse"),
    ("no-smx1-resend", "lost-first-message",
     {("broken", "reference"), ("broken", "broken")}, "expected SMX1"),
    ("wrong-ratchet-step-order", "bootstrap",
     {("reference", "broken"), ("broken", "reference")}, "DecryptionFailed"),
    ("drop-skipped-keys", "out-of-order",
     {("reference", "broken"), ("broken", "reference"), ("broken", "broken")},
     "DuplicateMessage"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("fault", "step", "failing", "phrase"), BROKEN_CELLS,
                         ids=[row[0] for row in BROKEN_CELLS])
def test_a_broken_adapter_fails_its_cells_at_the_step_that_exposes_it(
    fault: str, step: str, failing: set[tuple[str, str]], phrase: str
) -> None:
    report = live(reference(), faulty("broken", fault))
    assert not report.passed
    for cell in report.cells:
        if (cell.sender, cell.receiver) in failing:
            assert cell.verdict is Verdict.FAIL, (cell.key, cell.detail)
            assert cell.step == step, (cell.key, cell.detail)
            assert phrase in cell.detail and "broken" in cell.detail
            assert cell.envelope, "a failing cell names its envelope"
        else:
            assert cell.verdict is Verdict.PASS, (cell.key, cell.detail)


def test_the_wire_scan_accounts_for_every_fetched_envelope(reference_report: LiveReport) -> None:
    """``live.send`` lists sync copies too, so every envelope a receiver fetched is one the
    wire scan read: nothing fetched is left unmatched (and nothing is merely a note)."""
    wire = reference_report.oracle["sources"]["wire"]
    assert wire["notes"] == [] and wire["errors"] == []
    fetched = wire["parts"]["fetched"]
    count, matched = (int(word) for word in fetched.split() if word.isdigit())
    assert count == matched and count > wire["items"] / 2, fetched


@pytest.mark.slow
def test_an_adapter_hiding_its_sync_copies_fails_where_they_are_fetched() -> None:
    """The sync copies go on the wire but not into ``live.send``'s result: each cell where a
    broken device sends one fails when its sibling fetches it (alice's phone in fan-out; bob's
    reinstalled phone at the end), naming the envelope, and the wire source says which
    fetched bytes went unscanned."""
    report = live(reference(), faulty("broken", "hide-sync-copies"))
    assert not report.passed
    failing = {("broken", "reference"): "fan-out", ("broken", "broken"): "fan-out",
               ("reference", "broken"): "reinstall"}
    for cell in report.cells:
        step = failing.get((cell.sender, cell.receiver))
        if step is None:
            assert cell.verdict is Verdict.PASS, (cell.key, cell.detail)
            continue
        assert cell.verdict is Verdict.FAIL and cell.step == step, (cell.key, cell.detail)
        assert cell.detail.startswith("unlisted envelope:") and "broken" in cell.detail
        assert "no live.send result of broken" in cell.detail and cell.envelope
    errors = report.oracle["sources"]["wire"]["errors"]
    assert len(errors) == 1 and errors[0].startswith("3 fetched envelope(s) match no listed")
    assert report.oracle["passed"] is False and report.oracle["clean"]
    # every source ran, yet the headline must not call it a full scan
    assert not report.oracle["complete"] and report.oracle["not_scanned"] == {}
    assert "INCOMPLETE scan (wire, stores (store), logs): wire missed 3 fetched envelope(s) " \
        "no live.send listed" in _headline(report, markup=False)


def test_the_oracle_fails_the_cells_whose_plaintext_reached_the_relay() -> None:
    """An adapter that converses correctly but also uploads each plaintext unencrypted: only
    the oracle can see it, and it must name the cell and the message."""
    report = live(reference(), faulty("leaky", "leak-plaintext"))
    assert report.cell("reference", "reference").verdict is Verdict.PASS
    assert report.oracle["ran"] and not report.oracle["clean"]
    for key in (("reference", "leaky"), ("leaky", "reference"), ("leaky", "leaky")):
        cell = report.cell(*key)
        assert cell.verdict is Verdict.FAIL and cell.step == "oracle", cell.detail
        assert "plaintext canary" in cell.detail and cell.envelope


@pytest.mark.backend
def test_reference_passes_on_local_backends_and_the_oracle_reads_their_dumps() -> None:
    """``--relay local``: the relay on real MongoDB (FerretDB), Redis and SeaweedFS; without
    those binaries this errors (and so fails in CI) rather than skipping."""
    report = asyncio.run(run_live([reference()], "local", timeout_s=30.0))
    assert report.passed, [c.to_json() for c in report.cells]
    for tier in ("mongodb", "redis", "log"):
        assert report.oracle["bytes_by_tier"].get(tier, 0) > 0, tier


@pytest.mark.cites("SPEC §7 r3")
def test_an_adapter_without_live_operations_is_unsupported_never_a_pass() -> None:
    report = live(reference(), faulty("vectors-only", "no-live"))
    assert report.cell("reference", "reference").verdict is Verdict.PASS
    for key in (("reference", "vectors-only"), ("vectors-only", "reference"),
                ("vectors-only", "vectors-only")):
        cell = report.cell(*key)
        assert cell.verdict is Verdict.UNSUPPORTED
        assert "live.send" in cell.detail
    assert not report.passed


def test_a_hung_adapter_times_out_its_cells_and_the_gate_finishes() -> None:
    report = live(reference(), faulty("stuck", "hang", "--op", "live.send"), timeout_s=4.0)
    assert report.cell("reference", "reference").verdict is Verdict.PASS
    for key in (("reference", "stuck"), ("stuck", "reference"), ("stuck", "stuck")):
        cell = report.cell(*key)
        assert cell.verdict is Verdict.TIMEOUT, cell.detail
        assert "live.send" in cell.detail
    page = render_html(report)
    assert "stuck-&gt;reference" in page and "no answer to" in page


def test_failing_cells_are_junit_failures_naming_step_and_error(tmp_path: Path) -> None:
    report = live(reference(), faulty("vectors-only", "no-live"))
    write_junit(report, tmp_path / "live.xml")
    suite = ET.parse(tmp_path / "live.xml").getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "3"
    failure = next(case for case in suite.iter("testcase")
                   if case.get("name") == "vectors-only->reference").find("failure")
    assert failure is not None
    assert failure.get("message", "").startswith("unsupported at step setup: vectors-only")


def test_a_crashing_adapter_gets_a_crash_verdict() -> None:
    report = live(faulty("crashy", "crash", "--op", "live.receive"), timeout_s=5.0)
    cell = report.cell("crashy", "crashy")
    assert cell.verdict is Verdict.CRASH and cell.step == "bootstrap"
    assert "simulated crash" in cell.detail


def test_cli_writes_every_report_and_exits_by_the_verdict(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        gate_command,
        ["live", "--impl", f"ref={reference().command}", "--json", str(tmp_path / "l.json"),
         "--junit", str(tmp_path / "l.xml"), "--html", str(tmp_path / "l.html")],
    )
    assert result.exit_code == 0, result.output
    assert "live gate: PASS" in result.output
    doc = json.loads((tmp_path / "l.json").read_text())
    assert doc["verdict"] == "pass" and doc["cells"][0]["sender"] == "ref"
    assert (tmp_path / "l.html").read_text().startswith("<!doctype html>")
    bad = CliRunner().invoke(gate_command, ["live", "--relay", "ftp://nowhere"])
    assert bad.exit_code == 2
