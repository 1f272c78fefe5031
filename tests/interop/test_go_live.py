"""The live interop matrix with the second implementation (issue #7): the reference and the Go
adapter hold every scripted conversation of ``semafore gate live`` through a real relay, in all
four directions (reference→reference, reference→go, go→reference, go→go), and the
plaintext-absence oracle scans what the relay held.

The Go side is written from SPEC.md and docs/adapter-contract.md §5 only, so a cell passing
means two implementations agree on X3DH, SMX1 wrapping until the first reply, the Double
Ratchet under reordering and loss, simultaneous initiation, fan-out with sync copies (each
side lists them in ``live.send``, so the wire scan matches every fetched envelope), a
reinstall (410 → new identity) and the SPEC §7 session digests.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from semafore.deploy.errors import InfraError
from semafore.deploy.testing import unavailable
from semafore.gate.live import LIVE_OPS, STEPS, LiveReport, run_live
from semafore.gate.runner import Impl
from semafore.gate.verdict import Verdict
from tests.gate.conftest import reference

pytestmark = [pytest.mark.interop, pytest.mark.timeout(900)]

CELLS = [("reference", "reference"), ("reference", "go"), ("go", "reference"), ("go", "go")]
SCRIPT = [step for step in STEPS if step != "oracle"]


def matrix(go_adapter: Path, relay: str) -> LiveReport:
    impls = [reference(), Impl("go", str(go_adapter))]
    try:
        return asyncio.run(run_live(impls, relay, timeout_s=30.0))
    except InfraError as exc:  # --relay local without redis-server / weed / ferretdb
        unavailable(str(exc))


def assert_every_cell_passes(report: LiveReport) -> None:
    assert [(c.sender, c.receiver) for c in report.cells] == CELLS
    for cell in report.cells:
        assert cell.verdict is Verdict.PASS, cell.to_json()
        assert cell.steps_passed == SCRIPT, cell.key
    assert report.passed
    oracle = report.oracle
    assert oracle["ran"] and oracle["clean"], oracle.get("hits")
    assert oracle["canaries"] >= 20 * len(CELLS)  # one per message of every cell's script
    # both implementations list their sync copies: every fetched envelope was scanned
    wire = oracle["sources"]["wire"]
    assert wire["errors"] == [] and wire["notes"] == [], wire
    count, matched = (int(w) for w in wire["parts"]["fetched"].split() if w.isdigit())
    assert count == matched > 0, wire["parts"]


@pytest.fixture(scope="module")
def embedded_report(go_adapter: Path) -> LiveReport:
    return matrix(go_adapter, "embedded")


def test_go_advertises_every_live_operation(embedded_report: LiveReport) -> None:
    caps = embedded_report.capabilities["go"]
    assert caps is not None and caps["name"] == "semafore-go"
    assert set(LIVE_OPS) | {"live.close"} <= set(caps["ops"])


def test_reference_and_go_converse_in_every_direction_on_the_embedded_relay(
    embedded_report: LiveReport,
) -> None:
    assert_every_cell_passes(embedded_report)
    assert embedded_report.oracle["bytes_by_tier"]["store"] > 0
    assert embedded_report.oracle["bytes_by_tier"]["log"] > 0


@pytest.mark.backend
def test_reference_and_go_converse_on_the_local_backends(go_adapter: Path) -> None:
    """``--relay local``: the relay on real MongoDB (FerretDB), Redis and SeaweedFS; the
    oracle reads their dumps."""
    report = matrix(go_adapter, "local")
    assert_every_cell_passes(report)
    for tier in ("mongodb", "redis", "log"):
        assert report.oracle["bytes_by_tier"].get(tier, 0) > 0, tier
