"""The sabotage kill matrix (issue #11, docs/sabotage.md).

The rules — killed, survived, not run here, baseline red, crashed, decorative, lower tier —
are specified on synthetic runs, each shown able to turn the gate red; the reports keep the
JSON shape the lead's tooling reads; then the real thing: a worker that dies is that unit's
error only, a lower-tier pytest session really runs with the sabotage on (tests/conftest.py),
and ``semafore sim sabotage`` runs one real scenario against one real sabotage.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from semafore import sabotage as catalogue
from semafore.sabotage import CATALOGUE, Component, Sabotage
from simulator import sabotage_matrix as sm
from simulator.cli.sim import command
from simulator.report.model import Verdict
from simulator.sabotage_matrix import (
    CatalogueRun,
    Cell,
    LowerTierRun,
    Matrix,
    Observation,
    TierOutcome,
)

ROOT = Path(__file__).resolve().parents[2]
THREAT = "scenarios/threats/server-compromise.yaml"
DESYNC = "scenarios/desync/message-loss.yaml"
OUT_OF_SCOPE = "scenarios/out-of-scope/traffic-analysis.yaml"
BACKEND_ONLY = "scenarios/desync/backend-restarts-mid-delivery.yaml"

OK, FAIL, ERROR = Verdict.PASS, Verdict.FAIL, Verdict.ERROR


def name_of(path: str) -> str:
    return Path(path).stem


def observed(sabotage: str | None, verdicts: Mapping[str, Verdict]) -> CatalogueRun:
    return CatalogueRun(sabotage, tuple(Observation(p, name_of(p), v, f"{v.value} because")
                                        for p, v in verdicts.items()), 1.0)


def sabotage(name: str, *tests: str) -> Sabotage:
    return Sabotage(name=name, component=Component.RELAY, description=f"{name} defect",
                    catches=f"a scenario that notices {name}", lower_tier=tests)


def tier(name: str | None, exit_code: int | None, *ids: str, failed: tuple[str, ...] = ()
         ) -> LowerTierRun:
    return LowerTierRun(name, ids, exit_code, failed, "pytest output", 1.0)


def matrix(baseline: Mapping[str, Verdict], runs: Mapping[str, Mapping[str, Verdict]], *,
           sabotages: tuple[Sabotage, ...] | None = None, complete: bool = True,
           lower: Mapping[str, LowerTierRun] | None = None,
           lower_baseline: LowerTierRun | None = None,
           crashed: Mapping[str, str] | None = None) -> Matrix:
    chosen = sabotages or tuple(sabotage(n) for n in runs)
    made = {n: observed(n, v) for n, v in runs.items()}
    for name, why in (crashed or {}).items():
        made[name] = CatalogueRun.crash(name, list(baseline), why, 1.0)
    return Matrix(provider="embedded", sabotages=chosen, baseline=observed(None, baseline),
                  runs=made, lower=dict(lower or {}), lower_baseline=lower_baseline,
                  complete=complete, wall_s=12.5)


# ----------------------------------------------------------------------------- one cell


@given(st.sampled_from(Verdict), st.sampled_from(Verdict))
def test_a_cell_is_killed_exactly_when_an_ok_baseline_goes_red_under_sabotage(
    baseline: Verdict, sabotaged: Verdict,
) -> None:
    cell = sm.judge_cell(baseline, sabotaged)
    if baseline is Verdict.SKIPPED:
        assert cell is Cell.NOT_RUN
    elif not baseline.ok:
        assert cell is Cell.BASELINE_RED
    else:
        assert (cell is Cell.KILLED) == (not sabotaged.ok)
        assert (cell is Cell.SURVIVED) == sabotaged.ok


@pytest.mark.parametrize(("baseline", "sabotaged", "cell"), [
    (Verdict.PASS, Verdict.FAIL, Cell.KILLED),
    (Verdict.PASS, Verdict.ERROR, Cell.KILLED),
    (Verdict.EXPOSED, Verdict.FAIL, Cell.KILLED),
    (Verdict.PASS, Verdict.PASS, Cell.SURVIVED),
    (Verdict.EXPOSED, Verdict.EXPOSED, Cell.SURVIVED),
    (Verdict.SKIPPED, Verdict.SKIPPED, Cell.NOT_RUN),
    (Verdict.FAIL, Verdict.FAIL, Cell.BASELINE_RED),
    (Verdict.ERROR, Verdict.PASS, Cell.BASELINE_RED),
    (Verdict.PASS, None, Cell.CRASHED),
])
def test_cell_table(baseline: Verdict, sabotaged: Verdict | None, cell: Cell) -> None:
    assert sm.judge_cell(baseline, sabotaged) is cell


# ------------------------------------------------------------------------- the gate rules


def test_a_sabotage_some_scenario_catches_is_killed_by_it_and_the_gate_is_green() -> None:
    m = matrix({THREAT: OK, DESYNC: OK},
               {"drop-acks": {THREAT: OK, DESYNC: FAIL}, "leak-keys": {THREAT: ERROR, DESYNC: OK}})
    assert m.killed_by("drop-acks") == ["message-loss"]
    assert m.killed_by("leak-keys") == ["server-compromise"]
    assert m.kills(DESYNC) == ["drop-acks"]
    assert m.survivors == [] and m.decorative == [] and m.problems == []
    assert m.exit_code == 0


def test_a_sabotage_every_scenario_lets_through_survives_and_turns_the_gate_red() -> None:
    m = matrix({THREAT: OK, DESYNC: OK},
               {"drop-acks": {THREAT: OK, DESYNC: FAIL}, "quiet": {THREAT: OK, DESYNC: OK}})
    assert m.survivors == ["quiet"]
    assert m.killed_by("quiet") == []
    assert m.exit_code == 1
    assert any("survived every scenario and test: quiet" in p for p in m.problems)


@pytest.mark.parametrize("path", [THREAT, DESYNC])
def test_a_threats_or_desync_scenario_that_catches_nothing_is_decorative(path: str) -> None:
    other = DESYNC if path == THREAT else THREAT
    m = matrix({path: OK, other: OK}, {"drop-acks": {path: OK, other: FAIL}})
    assert m.survivors == []
    assert [o.path for o in m.decorative] == [path]
    assert m.exit_code == 1
    assert any("decoration" in p and name_of(path) in p for p in m.problems)


def test_out_of_scope_and_not_run_scenarios_are_never_decorative() -> None:
    m = matrix({THREAT: OK, OUT_OF_SCOPE: Verdict.EXPOSED, BACKEND_ONLY: Verdict.SKIPPED},
               {"drop-acks": {THREAT: FAIL, OUT_OF_SCOPE: Verdict.EXPOSED,
                              BACKEND_ONLY: Verdict.SKIPPED}})
    assert m.decorative == []
    assert [o.path for o in m.not_run] == [BACKEND_ONLY]
    assert m.cell("drop-acks", BACKEND_ONLY) is Cell.NOT_RUN
    assert m.exit_code == 0


def test_decoration_is_not_judged_on_a_subset_of_the_catalogue() -> None:
    runs = {"drop-acks": {THREAT: OK, DESYNC: FAIL}}
    assert [o.path for o in matrix({THREAT: OK, DESYNC: OK}, runs).decorative] == [THREAT]
    subset = matrix({THREAT: OK, DESYNC: OK}, runs, complete=False)
    assert subset.decorative == [] and subset.exit_code == 0


def test_a_red_baseline_judges_nothing_against_it_and_fails_the_command() -> None:
    m = matrix({THREAT: FAIL, DESYNC: OK}, {"drop-acks": {THREAT: FAIL, DESYNC: FAIL}})
    assert m.cell("drop-acks", THREAT) is Cell.BASELINE_RED
    assert m.killed_by("drop-acks") == ["message-loss"]  # only the judged scenario counts
    assert m.decorative == []  # a red scenario is not judged decorative either
    assert m.exit_code == 1
    assert m.problems[0].startswith("baseline red: fix the catalogue first")
    assert "server-compromise: fail" in m.problems[0]


def test_a_crashed_worker_is_that_sabotage_s_error_never_a_kill() -> None:
    m = matrix({THREAT: OK, DESYNC: OK}, {"drop-acks": {THREAT: FAIL, DESYNC: FAIL}},
               sabotages=(sabotage("drop-acks"), sabotage("boom")),
               crashed={"boom": "BrokenProcessPool: terminated abruptly"})
    assert m.cell("boom", THREAT) is Cell.CRASHED
    assert m.killed_by("boom") == []
    assert "boom" not in m.survivors  # not judged is not the same as survived
    assert m.unjudged("boom") == "worker crashed: BrokenProcessPool: terminated abruptly"
    assert m.killed_by("drop-acks") == ["server-compromise", "message-loss"]
    assert m.exit_code == 1


# ---------------------------------------------------------------------------- lower tier

TEST_ID = "tests/protocol/test_ratchet.py::test_replay_is_refused"


def test_a_failing_lower_tier_test_kills_a_sabotage_no_scenario_caught() -> None:
    s = sabotage("skip-check", TEST_ID)
    m = matrix({THREAT: OK}, {"skip-check": {THREAT: OK}}, sabotages=(s,), complete=False,
               lower={"skip-check": tier("skip-check", 1, TEST_ID, failed=(TEST_ID,))},
               lower_baseline=tier(None, 0, TEST_ID))
    assert m.killed_by("skip-check") == [TEST_ID]
    assert m.survivors == [] and m.exit_code == 0


def test_a_passing_lower_tier_does_not_kill() -> None:
    s = sabotage("skip-check", TEST_ID)
    m = matrix({THREAT: OK}, {"skip-check": {THREAT: OK}}, sabotages=(s,), complete=False,
               lower={"skip-check": tier("skip-check", 0, TEST_ID)},
               lower_baseline=tier(None, 0, TEST_ID))
    assert m.survivors == ["skip-check"] and m.exit_code == 1


OTHER_ID = "tests/protocol/test_x3dh.py"


def test_lower_tier_kills_count_only_for_tests_that_pass_with_no_sabotage() -> None:
    red, green = sabotage("red-test", TEST_ID), sabotage("green-test", OTHER_ID)
    m = matrix({THREAT: OK}, {"red-test": {THREAT: OK}, "green-test": {THREAT: OK}},
               sabotages=(red, green), complete=False,
               lower={"red-test": tier("red-test", 1, TEST_ID, failed=(TEST_ID,)),
                      "green-test": tier("green-test", 1, OTHER_ID,
                                         failed=(OTHER_ID + "::test_sk",))},
               lower_baseline=tier(None, 1, TEST_ID, OTHER_ID, failed=(TEST_ID,)))
    assert m.red_without_sabotage(TEST_ID) and not m.red_without_sabotage(OTHER_ID)
    assert m.killed_by("red-test") == []
    assert m.killed_by("green-test") == [OTHER_ID + "::test_sk"]
    assert m.survivors == ["red-test"]
    assert any(p.startswith("lower-tier baseline red") and TEST_ID in p for p in m.problems)
    assert m.exit_code == 1


def test_a_whole_file_id_is_red_when_any_test_in_it_fails_with_no_sabotage() -> None:
    m = matrix({THREAT: OK}, {"s": {THREAT: OK}}, sabotages=(sabotage("s", OTHER_ID),),
               lower={"s": tier("s", 1, OTHER_ID)},
               lower_baseline=tier(None, 1, OTHER_ID, failed=(OTHER_ID + "::test_a[1]",)))
    assert m.red_without_sabotage(OTHER_ID)
    assert m.red_without_sabotage(OTHER_ID + "::test_a")  # parametrised: test_a[1] is red
    assert not m.red_without_sabotage(OTHER_ID + "::test_b")
    assert m.killed_by("s") == []


def test_no_lower_tier_kill_counts_when_the_baseline_tests_could_not_run() -> None:
    m = matrix({THREAT: OK}, {"s": {THREAT: OK}}, sabotages=(sabotage("s", TEST_ID),),
               lower={"s": tier("s", 1, TEST_ID, failed=(TEST_ID,))},
               lower_baseline=tier(None, 4, TEST_ID))
    assert m.red_without_sabotage(TEST_ID)
    assert m.killed_by("s") == [] and m.survivors == ["s"]
    assert m.exit_code == 1


@pytest.mark.parametrize("exit_code", [2, 3, 4, 5, None])
def test_a_lower_tier_run_that_is_not_a_pass_or_a_failure_is_an_error(
    exit_code: int | None,
) -> None:
    run = tier("skip-check", exit_code, TEST_ID)
    assert run.outcome is TierOutcome.ERROR and run.killers == ()
    m = matrix({THREAT: OK}, {"skip-check": {THREAT: FAIL}},
               sabotages=(sabotage("skip-check", TEST_ID),), complete=False,
               lower={"skip-check": run}, lower_baseline=tier(None, 0, TEST_ID))
    assert m.killed_by("skip-check") == ["server-compromise"]
    assert m.unjudged("skip-check") is not None
    assert m.exit_code == 1  # a catalogue entry whose tests cannot run is a broken check


def test_a_lower_tier_error_names_what_pytest_said() -> None:
    said = "ERROR: file or directory not found: tests/sabotage/test_guards.py\nno tests ran"
    run = LowerTierRun("s", (TEST_ID,), 4, (), said, 1.0)
    m = matrix({THREAT: OK}, {"s": {THREAT: FAIL}}, sabotages=(sabotage("s", TEST_ID),),
               lower={"s": run}, lower_baseline=tier(None, 0, TEST_ID))
    assert m.unjudged("s") == ("lower tier did not run: pytest exit 4: ERROR: file or "
                               "directory not found: tests/sabotage/test_guards.py")


def test_the_kill_is_credited_to_the_test_pytest_reports_failing() -> None:
    output = """\
.F
=================================== FAILURES ===================================
____________________________ test_b ____________________________
E   assert False
=========================== short test summary info ============================
FAILED tests/protocol/test_x.py::test_b[case 1] - assert False
ERROR tests/protocol/test_y.py::test_c
!!!!!!!!!!!!!!!!!!!!!!!!!! stopping after 1 failures !!!!!!!!!!!!!!!!!!!!!!!!!!!
1 failed, 1 passed in 0.12s
"""
    failed = sm.failed_node_ids(output)
    assert failed == ("tests/protocol/test_x.py::test_b[case 1]",
                      "tests/protocol/test_y.py::test_c")
    ids = ("tests/protocol/test_x.py::test_a", "tests/protocol/test_x.py::test_b")
    assert tier("s", 1, *ids, failed=failed[:1]).killers == failed[:1]
    assert tier("s", 1, *ids).killers == ids  # -x: at least one of them failed
    assert tier("s", 0, *ids, failed=()).killers == ()


def test_the_progress_bar_counts_every_unit_run_matrix_runs() -> None:
    plain, tested = sabotage("a"), sabotage("b", TEST_ID)
    assert sm.unit_count([plain, tested], lower_tier=True) == 1 + 2 + 1 + 1
    assert sm.unit_count([plain, tested], lower_tier=False) == 1 + 2
    assert sm.unit_count([plain], lower_tier=True) == 1 + 1


# ------------------------------------------------------------------------------- reports


def reported() -> Matrix:
    return matrix(
        {THREAT: OK, DESYNC: OK, BACKEND_ONLY: Verdict.SKIPPED},
        {"drop-acks": {THREAT: OK, DESYNC: FAIL, BACKEND_ONLY: Verdict.SKIPPED},
         "skip-check": {THREAT: OK, DESYNC: OK, BACKEND_ONLY: Verdict.SKIPPED},
         "quiet": {THREAT: OK, DESYNC: OK, BACKEND_ONLY: Verdict.SKIPPED}},
        sabotages=(sabotage("drop-acks"), sabotage("skip-check", TEST_ID), sabotage("quiet")),
        lower={"skip-check": tier("skip-check", 1, TEST_ID, failed=(TEST_ID,))},
        lower_baseline=tier(None, 0, TEST_ID))


def test_json_report_has_exactly_the_documented_shape() -> None:
    doc = json.loads(sm.to_json(reported()))
    assert set(doc) == {"mode", "sabotages", "scenarios", "survivors", "decorative",
                        "undecided", "scenario_runs", "baseline", "provider", "wall_s"}
    assert doc["mode"] == "full" and doc["undecided"] == []
    assert doc["scenario_runs"] == 3 * 3
    assert doc["sabotages"] == [
        {"name": "drop-acks", "description": "drop-acks defect", "component": "relay",
         "killed_by": ["message-loss"], "not_evaluated": []},
        {"name": "skip-check", "description": "skip-check defect", "component": "relay",
         "killed_by": [TEST_ID], "not_evaluated": []},
        {"name": "quiet", "description": "quiet defect", "component": "relay", "killed_by": [],
         "not_evaluated": []},
    ]
    assert doc["scenarios"] == [
        {"name": "server-compromise", "path": THREAT, "kills": []},
        {"name": "message-loss", "path": DESYNC, "kills": ["drop-acks"]},
        {"name": "backend-restarts-mid-delivery", "path": BACKEND_ONLY, "kills": []},
    ]
    assert doc["survivors"] == ["quiet"]
    assert doc["decorative"] == ["server-compromise"]
    assert doc["baseline"]["ok"] is True
    assert doc["baseline"]["not_run"] == ["backend-restarts-mid-delivery"]
    assert doc["baseline"]["lower_tier"] == {"node_ids": [TEST_ID], "exit_code": 0, "ok": True,
                                             "failed": []}
    assert [s["verdict"] for s in doc["baseline"]["scenarios"]] == ["pass", "pass", "skipped"]
    assert all(s["wall_s"] == 0.0 for s in doc["baseline"]["scenarios"])
    assert doc["provider"] == "embedded" and doc["wall_s"] == 12.5


def test_junit_has_one_case_per_sabotage_failing_when_it_survived() -> None:
    root = ET.fromstring(sm.to_junit(reported()))
    cases = {c.get("name"): c for c in root.iter("testcase")}
    assert list(cases) == ["drop-acks", "skip-check", "quiet"]
    assert cases["quiet"].find("failure") is not None
    assert cases["drop-acks"].find("failure") is None
    assert cases["skip-check"].find("failure") is None
    assert "killed by: " + TEST_ID in (cases["skip-check"].findtext("system-out") or "")
    assert root.get("failures") == "1" and root.get("tests") == "3"


def test_html_is_one_self_contained_page_with_every_cell() -> None:
    page = sm.to_html(reported())
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page and "src=" not in page and "<link" not in page
    assert page.count('class="c c-killed"') == 1
    assert page.count('class="c c-survived"') == 5
    assert page.count('class="c c-not-run-here"') == 3
    assert "gate: failed" in page and "class=decorative" in page
    assert "survived every scenario and test: quiet" in page


def test_terminal_rendering_names_survivors_and_decoration(capsys: pytest.CaptureFixture[str]
                                                           ) -> None:
    from rich.console import Console

    sm.render(reported(), Console(width=160, force_terminal=False))
    out = capsys.readouterr().out
    assert "survivors: quiet" in out
    assert "decorative: server-compromise" in out
    assert "not run here: backend-restarts-mid-delivery" in out
    assert "gate: failed" in out and "wall time 12.5 s" in out


# ------------------------------------------------------------------------ the command line


def fake_matrix(monkeypatch: pytest.MonkeyPatch, made: Matrix) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []

    def run_matrix(files: list[Path], **kwargs: Any) -> Matrix:
        calls.append({"files": [str(f) for f in files], **kwargs})
        return made

    monkeypatch.setattr(sm, "run_matrix", run_matrix)
    return calls


def test_command_exit_status_follows_the_gate(monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    green = matrix({DESYNC: OK}, {"drop-acks": {DESYNC: FAIL}})
    calls = fake_matrix(monkeypatch, green)
    runner = CliRunner()
    out = tmp_path / "m.json"
    result = runner.invoke(command, ["sabotage", str(ROOT / DESYNC), "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["survivors"] == []
    assert calls[0]["sabotages"] == CATALOGUE and calls[0]["lower_tier"] is True

    fake_matrix(monkeypatch, reported())
    assert runner.invoke(command, ["sabotage", str(ROOT / DESYNC)]).exit_code == 1
    fake_matrix(monkeypatch, matrix({DESYNC: FAIL}, {"drop-acks": {DESYNC: FAIL}}))
    red = runner.invoke(command, ["sabotage", str(ROOT / DESYNC)])
    assert red.exit_code == 1 and "baseline red: fix the catalogue first" in red.output


def test_command_selects_sabotages_with_only_and_refuses_unknown_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = fake_matrix(monkeypatch, matrix({DESYNC: OK}, {"drop-acks": {DESYNC: FAIL}}))
    first = CATALOGUE[0].name
    runner = CliRunner()
    ok = runner.invoke(command, ["sabotage", str(ROOT / DESYNC), "--only", first,
                                 "--only", first, "--no-lower-tier", "--jobs", "2"])
    assert ok.exit_code == 0, ok.output
    assert calls[0]["sabotages"] == (CATALOGUE[0],)
    assert calls[0]["lower_tier"] is False and calls[0]["jobs"] == 2
    bad = runner.invoke(command, ["sabotage", str(ROOT / DESYNC), "--only", "no-such-thing"])
    assert bad.exit_code == 2 and "--only" in bad.output


def test_command_exits_2_when_there_is_no_scenario_file(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    fake_matrix(monkeypatch, reported())
    result = CliRunner().invoke(command, ["sabotage", str(tmp_path)])
    assert result.exit_code == 2 and "no scenario file" in result.output
    calls = fake_matrix(monkeypatch, matrix({DESYNC: OK}, {"drop-acks": {DESYNC: FAIL}}))
    monkeypatch.chdir(tmp_path)  # no scenarios/ here: the default is the shipped catalogue
    assert CliRunner().invoke(command, ["sabotage"]).exit_code == 0
    assert calls and all(Path(f).suffix == ".yaml" for f in calls[0]["files"])


# ---------------------------------------------------------------------- real processes


def test_every_run_judges_the_scenario_text_read_before_the_matrix_started(tmp_path: Path
                                                                          ) -> None:
    """A file edited (here: deleted) on disk mid-matrix changes nothing: runs parse the text
    read once at the start, so the edit cannot pass for a kill."""
    scope = ROOT / "scenarios/threats/device-compromise-scope.yaml"
    moved = tmp_path / "device-compromise-scope.yaml"
    moved.write_bytes(scope.read_bytes())
    source = sm.ScenarioSource.read(moved)
    moved.unlink()
    run = sm.run_catalogue(None, [source], "embedded")
    assert [(o.scenario, o.verdict) for o in run.observations] == [
        ("device-compromise-scope", Verdict.PASS)]

    gone = sm.ScenarioSource.read(moved)
    assert gone.text is None and gone.problem.startswith("cannot read")
    broken = sm.ScenarioSource(str(moved), "version: 1\nname: [\n")
    for source in (gone, broken):
        (observation,) = sm.run_catalogue(None, [source], "embedded").observations
        assert observation.verdict is Verdict.ERROR
        assert observation.reason.startswith("invalid scenario")


def die_abruptly() -> CatalogueRun:
    os._exit(3)


def raise_inside() -> CatalogueRun:
    raise RuntimeError("the unit itself failed")


def test_a_worker_that_dies_is_that_unit_s_error_not_the_matrix_s() -> None:
    def on_crash(why: str, wall_s: float) -> CatalogueRun:
        return CatalogueRun.crash("boom", [DESYNC], why, wall_s)

    died = sm.isolated(die_abruptly, on_crash)
    assert isinstance(died, CatalogueRun) and died.crashed is not None
    assert "BrokenProcessPool" in died.crashed or "terminated abruptly" in died.crashed
    raised = sm.isolated(raise_inside, on_crash)
    assert isinstance(raised, CatalogueRun)
    assert raised.crashed == "RuntimeError: the unit itself failed"


# A real switch and one test it breaks: the relay's log processor (semafore/server/oplog.py)
# writes identifiers raw under relay.logs_raw_ids, which this unit test of it notices.
LOGS_RAW = "relay.logs_raw_ids"
NOTICES_RAW_LOGS = ("tests/server/test_logging.py::"
                    "test_identifier_fields_become_h8_and_org_stays_raw")


def test_a_lower_tier_session_runs_with_the_sabotage_on() -> None:
    """The real chain: SEMAFORE_SABOTAGE -> tests/conftest.py -> switched_on -> a test that
    notices; and the same test passes with no sabotage (otherwise the kill means nothing)."""
    on = sm.run_lower_tier(LOGS_RAW, (NOTICES_RAW_LOGS,), root=ROOT)
    assert on.outcome is TierOutcome.KILLED, on.detail
    assert on.killers == (NOTICES_RAW_LOGS,)
    off = sm.run_lower_tier(None, (NOTICES_RAW_LOGS,), root=ROOT)
    assert off.outcome is TierOutcome.SURVIVED, off.detail


def test_an_unknown_sabotage_in_the_environment_is_a_usage_error_not_a_kill() -> None:
    run = sm.run_lower_tier("relay.no_such_sabotage", (NOTICES_RAW_LOGS,), root=ROOT)
    assert run.exit_code == pytest.ExitCode.USAGE_ERROR, run.detail
    assert run.outcome is TierOutcome.ERROR


def test_a_node_id_that_does_not_exist_is_an_error_not_a_pass() -> None:
    run = sm.run_lower_tier(LOGS_RAW, ("tests/server/test_logging.py::test_no_such_test",),
                            root=ROOT)
    assert run.outcome is TierOutcome.ERROR, run.detail


def test_the_suite_runs_with_no_sabotage_on_unless_the_environment_names_one() -> None:
    named = {n.strip() for n in os.environ.get(sm.SABOTAGE_ENV, "").split(",") if n.strip()}
    assert catalogue.current() == frozenset(named)


def test_end_to_end_one_real_scenario_against_one_real_sabotage(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch
                                                                ) -> None:
    """``semafore sim sabotage`` for real: a baseline worker and a sabotaged worker (spawned),
    the real executor and relay. relay.wrong_device queues each envelope of a multi-device
    send for the next device of the user; device-compromise-scope's delivery assertion sees
    it."""
    monkeypatch.chdir(ROOT)
    scope = "scenarios/threats/device-compromise-scope.yaml"
    out = tmp_path / "matrix.json"
    result = CliRunner().invoke(command, ["sabotage", scope, "--only", "relay.wrong_device",
                                          "--json", str(out), "--junit",
                                          str(tmp_path / "m.xml")])
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert doc["baseline"]["ok"] is True
    assert doc["baseline"]["scenarios"][0]["verdict"] == "pass"
    assert doc["baseline"]["lower_tier"] is None  # relay.wrong_device names no tests
    assert doc["sabotages"][0]["name"] == "relay.wrong_device"
    assert doc["sabotages"][0]["killed_by"] == ["device-compromise-scope"]
    assert doc["scenarios"] == [{"name": "device-compromise-scope", "path": scope,
                                 "kills": ["relay.wrong_device"]}]
    assert doc["survivors"] == [] and doc["decorative"] == []
    assert "sabotage relay.wrong_device: 1 fail" in result.output
    assert "wall time" in result.output
