"""The targeted kill matrix (simulator/sabotage_search.py, docs/sabotage.md "Targeted matrix").

Specified against a fake runner: a kill table says which (sabotage, scenario) cells go red,
the fake runs each probe the way a worker does (:meth:`Probe.next_path`, one scenario at a
time) and logs every cell it ran. The rules: a kill is reported only from a logged run that
went red; a survivor only after its whole row ran; a decorative scenario only after its whole
column ran; and whatever the hint says — right, stale, silent — the gate's answers are the
full matrix's. Then the matrix rules that make an early stop unable to pass for a verdict,
the reports, the hint file, the command line, and one real targeted run.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from semafore.sabotage import Component, Sabotage
from simulator import sabotage_matrix as sm
from simulator import sabotage_search as ss
from simulator.cli.sim import command
from simulator.report.model import Verdict
from simulator.sabotage_matrix import CatalogueRun, Cell, LowerTierRun, Matrix, Observation
from simulator.sabotage_search import Hint, HintError, Probe, Search

ROOT = Path(__file__).resolve().parents[2]
OK, FAIL = Verdict.PASS, Verdict.FAIL


def path_of(name: str, folder: str = "desync") -> str:
    return f"scenarios/{folder}/{name}.yaml"


def row(name: str, folder: str = "desync", verdict: Verdict = OK,
        wall_s: float = 1.0) -> Observation:
    return Observation(path_of(name, folder), name, verdict, verdict.value, wall_s)


def sabotage(name: str, catches: str = "", *tests: str) -> Sabotage:
    return Sabotage(name=name, component=Component.RELAY, description=f"{name} defect",
                    catches=catches or f"something that notices {name}", lower_tier=tests)


@dataclass
class FakeRunner:
    """Runs probes against a kill table, as a worker would, and logs every cell it ran."""

    kills: frozenset[tuple[str, str]]  # (sabotage, path) cells that go red
    crashing: frozenset[str] = frozenset()  # sabotages whose worker dies
    log: list[tuple[str, str]] = field(default_factory=list)
    rounds: list[list[Probe]] = field(default_factory=list)

    def __call__(self, probes: Sequence[Probe]) -> list[CatalogueRun]:
        self.rounds.append(list(probes))
        out = []
        for probe in probes:
            if probe.sabotage in self.crashing:
                out.append(CatalogueRun.crash(probe.sabotage, probe.order, "died", 1.0))
                continue
            done: list[Observation] = []
            while (path := probe.next_path(done)) is not None:
                self.log.append((probe.sabotage, path))
                red = (probe.sabotage, path) in self.kills
                done.append(Observation(path, Path(path).stem, FAIL if red else OK, "x", 1.0))
            out.append(CatalogueRun(probe.sabotage, tuple(done), 1.0))
        return out


LOWER_BASE = LowerTierRun(None, ("tests/t.py",), 0, (), "", 1.0)


def lower_runs(sabotages: Sequence[Sabotage], killed: frozenset[str]) -> dict[str, LowerTierRun]:
    return {s.name: LowerTierRun(s.name, s.lower_tier, 1 if s.name in killed else 0,
                                 s.lower_tier if s.name in killed else (), "", 1.0)
            for s in sabotages if s.lower_tier}


def targeted(rows: Sequence[Observation], sabotages: Sequence[Sabotage],
             kills: set[tuple[str, str]], hint: Hint | None = None, *,
             lower_killed: frozenset[str] = frozenset(), jobs: int = 4,
             crashing: frozenset[str] = frozenset()) -> tuple[Matrix, FakeRunner]:
    runner = FakeRunner(frozenset(kills), crashing)
    state = Search(tuple(sabotages), tuple(rows), hint or Hint("no hint"),
                   lower_killed=lower_killed, jobs=jobs)
    runs = ss.search(state, runner)
    lower = lower_runs(sabotages, lower_killed)
    return Matrix("embedded", tuple(sabotages), CatalogueRun(None, tuple(rows), 1.0), runs,
                  lower, LOWER_BASE if lower else None, complete=True, targeted=True), runner


def full(rows: Sequence[Observation], sabotages: Sequence[Sabotage],
         kills: set[tuple[str, str]], lower_killed: frozenset[str] = frozenset()) -> Matrix:
    """The full matrix of the same kill table: every cell run."""
    runs = {s.name: CatalogueRun(s.name, tuple(
        Observation(o.path, o.scenario, FAIL if (s.name, o.path) in kills else o.verdict, "x")
        for o in rows), 1.0) for s in sabotages}
    lower = lower_runs(sabotages, lower_killed)
    return Matrix("embedded", tuple(sabotages), CatalogueRun(None, tuple(rows), 1.0), runs,
                  lower, LOWER_BASE if lower else None, complete=True)


def assert_every_kill_was_run(m: Matrix, runner: FakeRunner) -> None:
    for s in m.sabotages:
        for o in m.rows:
            if m.cell(s.name, o.path) is Cell.KILLED:
                assert (s.name, o.path) in runner.log
                assert (s.name, o.path) in runner.kills


def hint_of(pairs: Mapping[str, Sequence[str]]) -> Hint:
    """A hint recording ``sabotage -> scenario names that killed it``."""
    return Hint.parse({"sabotages": [{"name": s, "killed_by": list(k)}
                                     for s, k in pairs.items()]}, "hint.json")


A, B, C, D = (row(n) for n in ("a", "b", "c", "d"))
X, Y = sabotage("relay.x"), sabotage("relay.y")


# ------------------------------------------------------------------------------ one probe


def seen(*cells: tuple[str, Verdict]) -> list[Observation]:
    return [Observation(p, Path(p).stem, v, "") for p, v in cells]


def test_a_probe_runs_its_required_scenarios_first_then_stops_at_the_first_kill() -> None:
    probe = Probe("relay.x", (A.path, B.path, C.path, D.path), frozenset({C.path}))
    assert probe.next_path([]) == C.path
    assert probe.next_path(seen((C.path, OK))) == A.path
    assert probe.next_path(seen((C.path, OK), (A.path, OK))) == B.path
    assert probe.next_path(seen((C.path, OK), (A.path, OK), (B.path, FAIL))) is None


def test_a_kill_among_the_required_still_runs_every_required_one() -> None:
    probe = Probe("relay.x", (A.path, B.path, C.path), frozenset({A.path, C.path}))
    assert probe.next_path(seen((A.path, FAIL))) == C.path
    assert probe.next_path(seen((A.path, FAIL), (C.path, OK))) is None


def test_a_probe_not_seeking_a_kill_runs_only_what_it_must() -> None:
    probe = Probe("relay.x", (B.path,), frozenset({B.path}), seek_kill=False)
    assert probe.next_path([]) == B.path
    assert probe.next_path(seen((B.path, OK))) is None


def test_a_probe_that_never_kills_runs_its_whole_order_and_never_a_scenario_twice() -> None:
    probe = Probe("relay.x", (A.path, B.path, C.path))
    done: list[Observation] = []
    while (path := probe.next_path(done)) is not None:
        assert path not in {o.path for o in done}
        done += seen((path, OK))
    assert [o.path for o in done] == [A.path, B.path, C.path]


# ------------------------------------------------------------------------- the scheduling


def test_a_right_hint_costs_one_run_per_sabotage() -> None:
    rows, sabs = [A, B, C], [X, Y]
    kills = {("relay.x", B.path), ("relay.x", C.path), ("relay.y", A.path)}
    m, runner = targeted(rows, sabs, kills, hint_of({"relay.x": ["b", "c"], "relay.y": ["a"]}))
    assert m.exit_code == 0, m.problems
    assert m.killed_by("relay.x") == ["b", "c"] and m.killed_by("relay.y") == ["a"]
    assert sorted(runner.log) == [("relay.x", B.path), ("relay.x", C.path),
                                  ("relay.y", A.path)]  # c: x is c's designated victim
    assert m.cell("relay.y", B.path) is Cell.NOT_EVALUATED
    assert m.scenario_runs == 3 < len(rows) * len(sabs)
    assert_every_kill_was_run(m, runner)


def test_a_recorded_killer_that_no_longer_kills_is_run_then_the_search_goes_on() -> None:
    stale = row("c", "out-of-scope")  # it once caught relay.x; it need not catch anything
    m, runner = targeted([A, B, stale], [X], {("relay.x", A.path), ("relay.x", B.path)},
                         hint_of({"relay.x": ["c"]}))
    assert runner.log[0] == ("relay.x", stale.path)  # the hint first, really run
    assert m.cell("relay.x", stale.path) is Cell.SURVIVED
    assert m.killed_by("relay.x")  # found by going on, from a run
    assert m.exit_code == 0, m.problems
    assert_every_kill_was_run(m, runner)


def test_a_sabotage_the_hint_does_not_know_is_searched_until_killed() -> None:
    new = sabotage("relay.new")
    rows = [A, B, C, D]
    m, runner = targeted(rows, [X, new], {("relay.x", A.path), ("relay.new", D.path),
                                          ("relay.x", B.path), ("relay.x", C.path)},
                         hint_of({"relay.x": ["a", "b", "c"]}))
    assert m.killed_by("relay.new") == ["d"]
    assert ("relay.new", D.path) in runner.log
    assert m.exit_code == 0, m.problems
    assert_every_kill_was_run(m, runner)


def test_a_survivor_is_reported_only_after_its_whole_row_ran() -> None:
    quiet = sabotage("relay.quiet")
    rows = [A, B, C]
    m, runner = targeted(rows, [X, quiet], {("relay.x", p) for p in (A.path, B.path, C.path)},
                         hint_of({"relay.x": ["a", "b", "c"], "relay.quiet": ["a"]}))
    assert m.survivors == ["relay.quiet"]
    assert {p for s, p in runner.log if s == "relay.quiet"} == {A.path, B.path, C.path}
    assert m.not_evaluated("relay.quiet") == []
    assert m.exit_code == 1


def test_a_decorative_scenario_is_found_only_by_running_every_sabotage_against_it() -> None:
    sabs = [X, Y, sabotage("relay.z")]
    kills = {(s.name, A.path) for s in sabs}  # d catches nothing; the hint says it catches y
    m, runner = targeted([A, D], sabs, kills, hint_of({s.name: ["a"] for s in sabs}
                                                      | {"relay.y": ["a", "d"]}))
    assert [o.scenario for o in m.decorative] == ["d"]
    assert {s for s, p in runner.log if p == D.path} == {s.name for s in sabs}
    assert m.unevaluated_on(D.path) == []
    assert m.exit_code == 1


def test_a_new_scenario_gets_a_victim_by_search_and_the_catches_text_goes_first() -> None:
    named = sabotage("relay.named", catches="desync/d (measured)")
    sabs = [X, Y, named]
    kills = {("relay.x", A.path), ("relay.y", A.path), ("relay.named", A.path),
             ("relay.named", D.path), ("relay.y", D.path)}
    m, runner = targeted([A, D], sabs, kills, hint_of({s.name: ["a"] for s in sabs}))
    assert m.kills(D.path), "the new scenario is shown to catch something"
    assert m.decorative == [] and m.undecided == [] and m.exit_code == 0
    assert ("relay.named", D.path) in runner.log
    assert ("relay.x", D.path) not in runner.log  # one victim was enough
    assert_every_kill_was_run(m, runner)


def test_a_designated_victim_that_no_longer_dies_sends_the_scenario_searching() -> None:
    sabs = [X, Y]
    kills = {("relay.x", A.path), ("relay.y", A.path), ("relay.y", D.path)}
    m, runner = targeted([A, D], sabs, kills, hint_of({"relay.x": ["a", "d"], "relay.y": ["a"]}),
                         jobs=1)
    assert ("relay.x", D.path) in runner.log  # the recorded victim ran, and lived
    assert m.cell("relay.x", D.path) is Cell.SURVIVED
    assert m.kills(D.path) == ["relay.y"] and m.exit_code == 0, m.problems
    assert len(runner.rounds) == 2  # found in the second round
    assert_every_kill_was_run(m, runner)


def test_a_lower_tier_kill_spares_the_scenarios_unless_one_needs_that_victim() -> None:
    tested = sabotage("client.tested", "lower tier", "tests/t.py::test_it")
    m, runner = targeted([A], [X, tested], {("relay.x", A.path)},
                         hint_of({"relay.x": ["a"], "client.tested": ["tests/t.py::test_it"]}),
                         lower_killed=frozenset({"client.tested"}))
    assert all(s != "client.tested" for s, _ in runner.log)
    assert m.killed_by("client.tested") == ["tests/t.py::test_it"]
    assert m.exit_code == 0, m.problems
    only_victim = targeted([A], [tested], {("client.tested", A.path)},
                           hint_of({"client.tested": ["a"]}),
                           lower_killed=frozenset({"client.tested"}))[1]
    assert only_victim.log == [("client.tested", A.path)]


def test_a_crashed_probe_is_not_judged_and_never_a_kill() -> None:
    m, _ = targeted([A], [X, Y], {("relay.x", A.path), ("relay.y", A.path)},
                    hint_of({"relay.x": ["a"], "relay.y": ["a"]}),
                    crashing=frozenset({"relay.y"}))
    assert m.unjudged("relay.y") == "worker crashed: died"
    assert m.killed_by("relay.y") == [] and "relay.y" not in m.survivors
    assert m.exit_code == 1


def test_baseline_red_and_skipped_scenarios_are_never_probed() -> None:
    red, skipped = row("r", verdict=FAIL), row("s", verdict=Verdict.SKIPPED)
    m, runner = targeted([red, skipped, A], [X], {("relay.x", A.path)},
                         hint_of({"relay.x": ["r", "s"]}))
    assert runner.log == [("relay.x", A.path)]
    assert m.exit_code == 1 and m.problems[0].startswith("baseline red")


FOLDERS = ("threats", "desync", "out-of-scope")


@st.composite
def worlds(draw: st.DrawFn) -> tuple[list[Observation], list[Sabotage], set[tuple[str, str]],
                                      Hint, frozenset[str], int]:
    n_rows = draw(st.integers(1, 5))
    rows = [row(f"s{i}", draw(st.sampled_from(FOLDERS)),
                draw(st.sampled_from([OK, OK, OK, Verdict.EXPOSED, Verdict.SKIPPED, FAIL])),
                draw(st.floats(0.1, 30)))
            for i in range(n_rows)]
    n_sabs = draw(st.integers(1, 5))
    names = [f"relay.x{j}" for j in range(n_sabs)]
    sabs = [sabotage(n, draw(st.sampled_from(["", *(f"desync/{o.scenario}" for o in rows)])),
                     *((f"tests/t.py::test_{n}",) if draw(st.booleans()) else ()))
            for n in names]
    cells = [(s, o.path) for s in names for o in rows]
    kills = set(draw(st.lists(st.sampled_from(cells), unique=True))) if cells else set()
    recorded = draw(st.lists(st.tuples(st.sampled_from(names),
                                       st.sampled_from([o.scenario for o in rows] + ["gone"])),
                             max_size=8))
    hint = Hint.parse({"sabotages": [{"name": s, "killed_by": [k]} for s, k in recorded]}, "h")
    lower_fails = draw(st.lists(st.booleans(), min_size=len(sabs), max_size=len(sabs)))
    lower_killed = frozenset(s.name for s, fails in zip(sabs, lower_fails, strict=True)
                             if s.lower_tier and fails)
    return rows, sabs, kills, hint, lower_killed, draw(st.integers(1, 4))


@settings(max_examples=300, deadline=None)
@given(worlds())
def test_whatever_the_hint_the_targeted_gate_is_the_full_gate(world: tuple[
        list[Observation], list[Sabotage], set[tuple[str, str]], Hint, frozenset[str], int]
                                                              ) -> None:
    rows, sabs, kills, hint, lower_killed, jobs = world
    m, runner = targeted(rows, sabs, kills, hint, lower_killed=lower_killed, jobs=jobs)
    whole = full(rows, sabs, kills, lower_killed)
    assert len(runner.log) == len(set(runner.log)), "a cell ran twice"
    assert_every_kill_was_run(m, runner)
    assert m.survivors == whole.survivors
    assert m.decorative == whole.decorative
    assert m.undecided == []
    assert m.problems == whole.problems
    assert m.exit_code == whole.exit_code
    assert all(bool(m.killed_by(s.name)) == bool(whole.killed_by(s.name)) for s in sabs)
    judgeable = {o.path for o in whole.judgeable}
    for name in m.survivors:  # a survivor only after its whole row ran
        assert {p for s, p in runner.log if s == name} == judgeable
    for o in m.decorative:  # decorative only after its whole column ran
        assert {s for s, p in runner.log if p == o.path} == {s.name for s in sabs}


# ----------------------------------------------------- matrix rules for a matrix with holes


def holed(runs: Mapping[str, Sequence[tuple[str, Verdict]]], rows: Sequence[Observation]
          ) -> Matrix:
    made = {s: CatalogueRun(s, tuple(Observation(p, Path(p).stem, v, "r") for p, v in cells), 1.0)
            for s, cells in runs.items()}
    return Matrix("embedded", tuple(sabotage(s) for s in runs),
                  CatalogueRun(None, tuple(rows), 1.0), made, {}, None, complete=True,
                  targeted=True)


def test_no_kill_with_a_cell_not_evaluated_is_not_judged_never_a_survivor() -> None:
    m = holed({"relay.x": [(A.path, FAIL)], "relay.y": [(A.path, OK)]}, [A, B])
    assert m.cell("relay.y", B.path) is Cell.NOT_EVALUATED
    assert m.survivors == []
    assert (m.unjudged("relay.y") or "").startswith("no kill found and 1 scenario(s) not "
                                                    "evaluated")
    assert m.exit_code == 1


def test_a_scenario_with_no_kill_and_a_sabotage_not_run_on_it_is_undecided_not_decorative(
) -> None:
    m = holed({"relay.x": [(A.path, FAIL), (B.path, OK)], "relay.y": [(A.path, FAIL)]}, [A, B])
    assert m.decorative == []
    assert [o.scenario for o in m.undecided] == ["b"]
    assert any("not run against every sabotage: b" in p for p in m.problems)
    assert m.exit_code == 1


def test_not_evaluated_cells_are_reported_as_such_everywhere(
        capsys: pytest.CaptureFixture[str]) -> None:
    from rich.console import Console

    m = holed({"relay.x": [(A.path, FAIL)], "relay.y": [(B.path, FAIL)]}, [A, B])
    assert m.exit_code == 0 and m.scenario_runs == 2
    doc = json.loads(sm.to_json(m))
    assert doc["mode"] == "targeted" and doc["scenario_runs"] == 2
    assert [s["not_evaluated"] for s in doc["sabotages"]] == [["b"], ["a"]]
    assert doc["survivors"] == [] and doc["undecided"] == []
    page = sm.to_html(m)
    assert page.count('class="c c-not-evaluated"') == 2
    assert "not evaluated (targeted)" in page and 'class="c c-survived"' not in page
    cases = {c.get("name"): c for c in ET.fromstring(sm.to_junit(m)).iter("testcase")}
    assert "not evaluated (targeted): b" in (cases["relay.x"].findtext("system-out") or "")
    assert cases["relay.x"].find("failure") is None
    sm.render(m, Console(width=160, force_terminal=False))
    out = capsys.readouterr().out
    assert "○" in out and "not evaluated (targeted)" in out and "targeted matrix" in out


# ------------------------------------------------------------------------------- the hint


def test_the_committed_matrix_is_a_hint() -> None:
    hint = Hint.load(ss.DEFAULT_HINT)
    assert "device-compromise-scope" in hint.killers_of("relay.wrong_device")
    assert "relay.wrong_device" in hint.victims_of("device-compromise-scope")


def test_a_hint_reads_both_sides_of_a_kill() -> None:
    hint = Hint.parse({"sabotages": [{"name": "relay.x", "killed_by": ["a"]}],
                       "scenarios": [{"name": "b", "kills": ["relay.x"]}]}, "h.json")
    assert hint.killers_of("relay.x") == ("a", "b")
    assert hint.victims_of("a") == ("relay.x",) and hint.victims_of("c") == ()


@pytest.mark.parametrize(("data", "where"), [
    ([], "h.json"),
    ({"sabotages": {}}, "h.json: sabotages"),
    ({"sabotages": [{"killed_by": []}]}, "h.json: sabotages[0].name"),
    ({"sabotages": [{"name": "x", "killed_by": "a"}]}, "h.json: sabotages[0].killed_by"),
    ({"scenarios": [{"name": "a", "kills": [1]}]}, "h.json: scenarios[0].kills"),
])
def test_a_malformed_hint_names_the_field(data: object, where: str) -> None:
    with pytest.raises(HintError) as caught:
        Hint.parse(data, "h.json")
    assert caught.value.field == where


def test_the_catches_text_names_a_scenario_only_as_a_whole_word() -> None:
    assert ss.named_in("desync/reorder (measured)", "reorder")
    assert ss.named_in("threats/insider, threats/subpoena", "subpoena")
    assert not ss.named_in("no scenario loses or reorders a first contact", "reorder")
    assert not ss.named_in("desync/message-loss-x", "message-loss")


# ------------------------------------------------------------------------ the command line


def test_targeted_runs_the_search_with_the_hint(monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    calls: list[Hint] = []

    def run_targeted(files: list[Path], **kwargs: object) -> Matrix:
        assert isinstance(kwargs["hint"], Hint)
        calls.append(kwargs["hint"])
        return holed({"relay.x": [(A.path, FAIL)]}, [A])

    monkeypatch.setattr(ss, "run_targeted", run_targeted)
    monkeypatch.setattr(sm, "run_matrix", lambda *a, **k: pytest.fail("full matrix ran"))
    target = str(ROOT / "scenarios/desync/reorder.yaml")
    runner = CliRunner()
    ok = runner.invoke(command, ["sabotage", target, "--targeted"])
    assert ok.exit_code == 0, ok.output
    assert calls[0].source == str(ss.DEFAULT_HINT)
    hint = tmp_path / "h.json"
    hint.write_text(json.dumps({"sabotages": [{"name": "relay.x", "killed_by": ["a"]}]}))
    assert runner.invoke(command, ["sabotage", target, "--targeted", "--hint",
                                   str(hint)]).exit_code == 0
    assert calls[1].killers_of("relay.x") == ("a",)
    alone = runner.invoke(command, ["sabotage", target, "--hint", str(hint)])
    assert alone.exit_code == 2 and "--targeted" in alone.output
    hint.write_text("[]")
    bad = runner.invoke(command, ["sabotage", target, "--targeted", "--hint", str(hint)])
    assert bad.exit_code == 2 and "expected a JSON object" in bad.output


def test_end_to_end_a_right_hint_runs_one_sabotaged_scenario(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    """The real thing, small: two cheap scenarios, relay.wrong_device, a hint naming the one
    that kills it — the baseline runs both, the sabotaged worker only that one."""
    monkeypatch.chdir(ROOT)
    added = "scenarios/desync/device-added-removed.yaml"
    replay = "scenarios/desync/duplication-replay.yaml"
    hint = tmp_path / "hint.json"
    hint.write_text(json.dumps({"sabotages": [{"name": "relay.wrong_device",
                                               "killed_by": ["device-added-removed"]}]}))
    out = tmp_path / "m.json"
    result = CliRunner().invoke(command, ["sabotage", replay, added, "--only",
                                          "relay.wrong_device", "--targeted", "--hint",
                                          str(hint), "--json", str(out)])
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert doc["mode"] == "targeted" and doc["scenario_runs"] == 1
    assert doc["sabotages"][0]["killed_by"] == ["device-added-removed"]
    assert doc["sabotages"][0]["not_evaluated"] == ["duplication-replay"]
    assert [s["verdict"] for s in doc["baseline"]["scenarios"]] == ["pass", "pass"]
