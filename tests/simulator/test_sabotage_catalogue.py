"""The whole kill matrix, as CI runs it (issue #11): every named product defect in
:mod:`semafore.sabotage` is caught by some scenario of the catalogue or by the lower-tier
test it names, and every scenario under ``threats/`` and ``desync/`` catches at least one —
a scenario that catches nothing is decoration.

It runs ``semafore sim sabotage --targeted`` as a reviewer would (its own processes, the
embedded relay): the same gate as the full matrix, searched for one witness per question in
the order the committed matrix (docs/sabotage-matrix.json) suggests, so it costs a baseline
and about one sabotaged run per sabotage instead of every cell (docs/sabotage.md "Targeted
matrix"). It keeps the JSON and HTML matrix under ``$SEMAFORE_MATRIX_DIR`` (default: pytest's
temporary directory) for the build's artefacts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600),
              pytest.mark.cites("seed §1.3 Threat-model honesty")]


def test_every_sabotage_is_killed_and_every_threat_and_desync_scenario_kills_one(
        tmp_path: Path) -> None:
    out = Path(os.environ.get("SEMAFORE_MATRIX_DIR", tmp_path))
    out.mkdir(parents=True, exist_ok=True)
    report, page = out / "sabotage-matrix.json", out / "sabotage-matrix.html"
    run = subprocess.run(
        [sys.executable, "-m", "semafore.cli.main", "sim", "sabotage", "scenarios/",
         "--targeted", "--jobs", os.environ.get("SEMAFORE_MATRIX_JOBS", "8"),
         "--json", str(report), "--html", str(page)],
        cwd=ROOT, capture_output=True, text=True, timeout=3600, check=False)
    assert report.exists(), f"no matrix written (exit {run.returncode}):\n{run.stderr[-3000:]}"
    matrix = json.loads(report.read_text())
    tail = run.stdout[-4000:]
    assert matrix["survivors"] == [], f"sabotages no scenario or test caught:\n{tail}"
    assert matrix["mode"] == "targeted"
    assert matrix["decorative"] == [], f"scenarios that catch nothing:\n{tail}"
    assert matrix["undecided"] == [], f"scenarios the search left open:\n{tail}"
    assert run.returncode == 0, f"exit {run.returncode}:\n{tail}\n{run.stderr[-2000:]}"
    killed = {s["name"] for s in matrix["sabotages"] if s["killed_by"]}
    from semafore.sabotage import CATALOGUE

    assert killed == {s.name for s in CATALOGUE}
    assert len(CATALOGUE) >= 25
