"""docs/sabotage-matrix.json, the last full kill matrix (docs/sabotage.md "Targeted matrix"),
is current: written by today's report format for today's catalogue of sabotages, scenario
files and lower-tier tests. It orders the targeted search (CI's gate) and feeds the
traceability matrix, so a stale one under-reports silently; the matrix itself takes a full
run to regenerate (:data:`REGENERATE`; ~36 min here), but what it must cover is known without
running anything: these tests render that skeleton with the matrix's own
:func:`simulator.sabotage_matrix.to_dict` and compare. The ``scenarios`` argument keeps the
recorded paths repo-relative (with no argument the CLI records absolute ones)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from semafore.sabotage import CATALOGUE
from simulator.report.model import Verdict
from simulator.sabotage_matrix import (
    PROJECT_ROOT,
    CatalogueRun,
    LowerTierRun,
    Matrix,
    Observation,
    to_dict,
)
from simulator.scenario import discover, load

COMMITTED = PROJECT_ROOT / "docs" / "sabotage-matrix.json"
REGENERATE = ("stale: from the project root run `semafore sim sabotage scenarios --json "
              "docs/sabotage-matrix.json` (a full run)")


@pytest.fixture(scope="module")
def committed() -> dict[str, Any]:
    matrix: dict[str, Any] = json.loads(COMMITTED.read_text())
    return matrix


@pytest.fixture(scope="module")
def skeleton() -> dict[str, Any]:
    """What a full run from the project root (``scenarios/``, the whole catalogue, the
    lower tier) reports, verdicts aside: every scenario file in discovery order under the
    name it declares, every sabotage in catalogue order, the union of lower-tier ids."""
    files = discover([PROJECT_ROOT / "scenarios"])
    rows = tuple(Observation(str(Path(f).relative_to(PROJECT_ROOT)), load(f).name,
                             Verdict.PASS, "") for f in files)
    lower_ids = tuple(dict.fromkeys(i for s in CATALOGUE for i in s.lower_tier))
    matrix = Matrix(
        provider="embedded", sabotages=CATALOGUE, baseline=CatalogueRun(None, rows, 0.0),
        runs={}, lower={}, lower_baseline=LowerTierRun(None, lower_ids, 0, (), "", 0.0),
        complete=True,
    )
    return to_dict(matrix)


def _keys(items: list[dict[str, Any]]) -> set[frozenset[str]]:
    return {frozenset(item) for item in items}


def test_it_is_in_the_current_report_format(committed: dict[str, Any],
                                            skeleton: dict[str, Any]) -> None:
    assert list(committed) == list(skeleton), REGENERATE
    assert _keys(committed["sabotages"]) == _keys(skeleton["sabotages"]), REGENERATE
    assert _keys(committed["scenarios"]) == _keys(skeleton["scenarios"]), REGENERATE
    assert list(committed["baseline"]) == list(skeleton["baseline"]), REGENERATE


def test_it_is_a_full_matrix_of_a_green_baseline(committed: dict[str, Any]) -> None:
    assert committed.get("mode") == "full", REGENERATE
    assert committed["baseline"]["ok"] is True, "the committed matrix had a red baseline"
    assert not any(s["not_evaluated"] for s in committed["sabotages"]), REGENERATE


def test_it_covers_every_sabotage_in_catalogue_order(committed: dict[str, Any],
                                                     skeleton: dict[str, Any]) -> None:
    def names(m: dict[str, Any]) -> list[str]:
        return [s["name"] for s in m["sabotages"]]

    assert names(committed) == names(skeleton), REGENERATE


def test_it_covers_every_scenario_file(committed: dict[str, Any],
                                       skeleton: dict[str, Any]) -> None:
    def rows(m: dict[str, Any]) -> list[tuple[str, str]]:
        return [(s["name"], s["path"]) for s in m["scenarios"]]

    assert rows(committed) == rows(skeleton), REGENERATE


def test_it_ran_the_lower_tier_tests_the_catalogue_names(committed: dict[str, Any],
                                                         skeleton: dict[str, Any]) -> None:
    lower = committed["baseline"]["lower_tier"]
    assert lower is not None, REGENERATE
    assert lower["node_ids"] == skeleton["baseline"]["lower_tier"]["node_ids"], REGENERATE
