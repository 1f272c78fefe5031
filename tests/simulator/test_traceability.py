"""The traceability matrix (simulator/trace.py, docs/traceability.md): the repository's own
trace is clean and current, and every rule the trace enforces can go red."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from simulator import trace
from simulator.cli.sim import command as sim
from simulator.trace import ProblemKind, RowGroup, Sources, SpecRule, TraceInputError

ROOT = Path(__file__).resolve().parents[2]
REPO = Sources.default(ROOT)


# --- the repository ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def repo_trace() -> trace.Trace:
    doc = REPO.out.read_text(encoding="utf-8") if REPO.out.exists() else ""
    named = trace.matrix_named_in(doc)
    return trace.build(REPO, ROOT / named if named else None)


def test_every_row_of_the_repository_is_covered_and_the_document_is_current(
    repo_trace: trace.Trace,
) -> None:
    problems = trace.check(repo_trace, REPO.out)
    assert problems == [], "\n".join(map(str, problems)) + (
        "\nfix the cites (docs/scenarios.md) or run `semafore sim trace`")


def test_the_repository_has_every_kind_of_row(repo_trace: trace.Trace) -> None:
    groups = {g: [r.row.id for r in repo_trace.rows if r.row.group is g] for g in RowGroup}
    assert len(groups[RowGroup.THREAT]) == 5
    assert "seed §1.1 Lawful subpoena targeting Attomus" in groups[RowGroup.THREAT]
    assert len(groups[RowGroup.NON_GUARANTEE]) == 7  # six §1.2 bullets and §2.5
    assert {"ADR-0093", "ADR-0094", "ADR-0095", "ADR-0097", "ADR-0169"} <= set(
        groups[RowGroup.ADR])
    assert len(groups[RowGroup.SPEC_RULE]) == len(trace.SPEC_RULES)


def test_the_reviewed_untestable_list_stays_small_and_explained() -> None:
    assert len(trace.UNTESTABLE) <= 10
    assert all(len(reason) > 30 for reason in trace.UNTESTABLE.values())


# --- a small synthetic repository ----------------------------------------------------------

SEED = """\
1. Threat model

1.1 In scope

  • Server-side compromise. The server cannot read messages.
  • Network adversary. Sees metadata only.

1.2 Out of scope

  • Traffic analysis by a global passive adversary. Not resisted.

2. Metadata

2.5 What this posture does not protect against

The database tier shows the graph (ADR-0019).

6. Cited ADRs

  • ADR-0019 — Log hashing.
  • ADR-0093 / 0094 — Retention.
"""

SPEC = """\
# Spec

Preamble: no rules here.

## 1. Keys

Every device owns its own keys.

Checks happen in this order:

- The signature is verified first and raises InvalidSignature.

## 2. Frames

A frame starts with the magic DRV1.
"""

RULES = (
    SpecRule(1, 1, "Per-device keys", ("Every device owns its own keys",)),
    SpecRule(1, 2, "Signature first", ("The signature is verified first",)),
    SpecRule(2, 1, "Frame magic", ("starts with the magic DRV1",)),
)

SCENARIO = (ROOT / "scenarios" / "desync" / "reorder.yaml").read_text(encoding="utf-8")


def _scenario(cites: list[str], name: str = "reorder") -> str:
    lines = SCENARIO.splitlines()
    out = [f"cites: {json.dumps(cites)}" if line.startswith("cites:") else line
           for line in lines]
    return "\n".join(out).replace("name: reorder", f"name: {name}") + "\n"


COVERING_TESTS = '''\
import pytest

pytestmark = pytest.mark.cites("SPEC §2 r1")


@pytest.mark.cites("seed §1.1 Server-side compromise", "ADR-0019")
def test_server() -> None:
    assert True


class TestTraffic:
    @pytest.mark.cites("seed §1.2 Traffic analysis", "seed §2.5", "ADR-0093")
    def test_observer(self) -> None:
        assert True


@pytest.mark.cites("SPEC §1 r1", "SPEC §1 r2", "ADR-0094")
async def test_keys() -> None:
    assert True
'''


@pytest.fixture
def world(tmp_path: Path) -> Sources:
    shared, root = tmp_path / "shared", tmp_path / "repo"
    (shared / "seed").mkdir(parents=True)
    (shared / "seed" / "architecture-and-threat-model.txt").write_text(SEED, encoding="utf-8")
    (shared / "SPEC.md").write_text(SPEC, encoding="utf-8")
    for sub in ("scenarios/desync", "tests", "docs"):
        (root / sub).mkdir(parents=True)
    (root / "scenarios/desync/reorder.yaml").write_text(
        _scenario(["seed §1.1 Network adversary", "SPEC §1"]), encoding="utf-8")
    (root / "tests/test_cover.py").write_text(COVERING_TESTS, encoding="utf-8")
    (root / "docs/server.md").write_text("# Relay\n\n## Messages (at-least-once)\n",
                                         encoding="utf-8")
    return Sources.default(root)


def build(world: Sources, **kw: object) -> trace.Trace:
    return trace.build(world, rules=RULES, untestable={}, **kw)  # type: ignore[arg-type]


def kinds(result: trace.Trace) -> list[ProblemKind]:
    return [p.kind for p in result.problems]


def test_a_fully_cited_world_has_no_problem(world: Sources) -> None:
    result = build(world)
    assert result.problems == []
    by_id = {r.row.id: r for r in result.rows}
    assert by_id["seed §1.1 Network adversary"].scenarios == ["reorder"]
    assert by_id["SPEC §2 r1"].tests == ["tests/test_cover.py"]  # module pytestmark
    assert by_id["seed §1.2 Traffic analysis by a global passive adversary"].tests == [
        "tests/test_cover.py::TestTraffic::test_observer"]
    assert by_id["SPEC §1 r2"].tests == ["tests/test_cover.py::test_keys"]  # async test
    assert result.references == {"SPEC §1 Keys": ["reorder"]}


def test_a_row_with_neither_scenario_nor_test_fails(world: Sources) -> None:
    text = COVERING_TESTS.replace('"seed §1.1 Server-side compromise", ', "")
    (world.tests / "test_cover.py").write_text(text, encoding="utf-8")
    result = build(world)
    assert [(p.kind, p.where) for p in result.problems] == [
        (ProblemKind.UNCOVERED, "seed §1.1 Server-side compromise")]


def test_a_section_cite_covers_none_of_the_section_rules(world: Sources) -> None:
    text = COVERING_TESTS.replace('"SPEC §1 r1", "SPEC §1 r2", ', '"SPEC §1", ')
    (world.tests / "test_cover.py").write_text(text, encoding="utf-8")
    result = build(world)
    assert {p.where for p in result.problems if p.kind is ProblemKind.UNCOVERED} == {
        "SPEC §1 r1", "SPEC §1 r2"}
    assert result.references["SPEC §1 Keys"] == ["reorder", "tests/test_cover.py::test_keys"]


@pytest.mark.parametrize("cite", ["SPEC 3", "§1.1 Network adversary", "ADR 19", "ADR-19",
                                  "spec §1 r1", "SPEC§1 r1", "README.md Messages"])
def test_an_unknown_cite_form_is_reported_with_its_location(world: Sources, cite: str) -> None:
    (world.scenarios / "desync/reorder.yaml").write_text(
        _scenario(["seed §1.1 Network adversary", cite]), encoding="utf-8")
    result = build(world)
    assert kinds(result) == [ProblemKind.UNKNOWN_CITE]
    assert result.problems[0].where == "scenarios/desync/reorder.yaml:8"


@pytest.mark.parametrize("cite", [
    "SPEC §1 r9",                       # no such rule
    "SPEC §9",                          # no such section
    "SPEC §1 r1 Frame magic",           # the title names another rule
    "SPEC §2 Keys",                     # the heading of §2 is Frames
    "ADR-0999",                         # named by no document
    "ADR-0019 Retention",               # the wrong title
    "seed §1.1 Insider exfiltration",   # no such threat
    "seed §1.1 adversary compromise",   # words not in one title
    "seed §7",                          # no such section
    "seed §2.5 Something else",         # the heading differs
    "docs/missing.md",                  # no such file
    "docs/server.md Keys",              # no such heading
])
def test_a_cite_that_names_no_row_or_section_is_an_error(world: Sources, cite: str) -> None:
    (world.tests / "test_extra.py").write_text(
        f"import pytest\n\n\n@pytest.mark.cites({cite!r})\ndef test_x() -> None:\n"
        "    assert True\n", encoding="utf-8")
    result = build(world)
    assert [(p.kind, p.where) for p in result.problems] == [
        (ProblemKind.UNRESOLVED_CITE, "tests/test_extra.py:4")]


def test_references_resolve_to_existing_sections_and_headings(world: Sources) -> None:
    index = trace.CiteIndex([], trace.seed_sections(SEED), trace.spec_sections(SPEC),
                            trace.doc_headings(world.docs))
    assert index.resolve("docs/server.md Messages").reference == (
        "docs/server.md Messages (at-least-once)")
    assert index.resolve("seed §1.1").reference == "seed §1.1 In scope"
    assert index.resolve("SPEC §2 Frames").reference == "SPEC §2 Frames"


@pytest.mark.parametrize(("source", "message"), [
    ('@pytest.mark.cites(REFS)\ndef test_x() -> None:\n    pass\n', "string literals"),
    ('@pytest.mark.cites()\ndef test_x() -> None:\n    pass\n', "one or more"),
    ('@pytest.mark.cites("SPEC §1 r1")\ndef helper() -> None:\n    pass\n', "not collect"),
    ('@pytest.mark.cites("SPEC §1 r1")\nclass Helper:\n    pass\n', "not collect"),
    ("def test_x(:\n", "cannot parse"),
])
def test_a_marker_trace_cannot_read_statically_is_reported(
    world: Sources, source: str, message: str,
) -> None:
    (world.tests / "test_bad.py").write_text("import pytest\n\n" + source, encoding="utf-8")
    result = build(world)
    assert kinds(result) == [ProblemKind.BAD_MARKER]
    assert message in result.problems[0].message


def test_from_pytest_import_mark_and_a_pytestmark_list_are_read(world: Sources) -> None:
    (world.tests / "test_forms.py").write_text(textwrap.dedent('''\
        import pytest
        from pytest import mark

        pytestmark = [pytest.mark.slow, mark.cites("SPEC §2 r1")]


        @mark.cites("SPEC §1 r1")
        def test_x() -> None:
            assert True
        '''), encoding="utf-8")
    by_id = {r.row.id: r for r in build(world).rows}
    assert "tests/test_forms.py" in by_id["SPEC §2 r1"].tests
    assert "tests/test_forms.py::test_x" in by_id["SPEC §1 r1"].tests


def test_a_scenario_that_does_not_load_is_reported(world: Sources) -> None:
    (world.scenarios / "desync/broken.yaml").write_text("version: 1\nname: broken\n",
                                                        encoding="utf-8")
    assert ProblemKind.BAD_SCENARIO in kinds(build(world))


def test_spec_drift_fails_both_ways(world: Sources) -> None:
    missing_anchor = (*RULES[:2], SpecRule(2, 1, "Frame magic", ("starts with SMX1",)))
    result = trace.build(world, rules=missing_anchor, untestable={})
    assert [p.where for p in result.problems if p.kind is ProblemKind.SPEC_DRIFT] == [
        "SPEC §2 r1", "SPEC §2"]  # the anchor is gone and its clause has no rule now
    no_rule = RULES[1:]
    result = trace.build(world, rules=no_rule, untestable={})
    drift = [p for p in result.problems if p.kind is ProblemKind.SPEC_DRIFT]
    assert [p.where for p in drift] == ["SPEC §1"]
    assert "Every device owns its own keys" in drift[0].message
    assert ProblemKind.UNRESOLVED_CITE in kinds(result)  # tests still cite SPEC §1 r1


def test_a_lead_in_clause_needs_no_rule() -> None:
    sections = trace.spec_sections(SPEC)
    assert "Checks happen in this order:" in sections[1].clauses
    assert not [p for p in trace.spec_rows(SPEC, RULES)[1]]


def test_the_untestable_list_cannot_hide_a_covered_row_or_name_a_missing_one(
    world: Sources,
) -> None:
    result = trace.build(world, rules=RULES, untestable={
        "seed §1.1 Network adversary": "said to be untestable",
        "ADR-4242": "no such row"})
    assert sorted((p.kind, p.where) for p in result.problems) == [
        (ProblemKind.UNTESTABLE_LIST, "ADR-4242"),
        (ProblemKind.UNTESTABLE_LIST, "seed §1.1 Network adversary")]


def test_an_untestable_row_is_rendered_with_its_reason(world: Sources) -> None:
    text = COVERING_TESTS.replace('"seed §1.2 Traffic analysis", ', "")
    (world.tests / "test_cover.py").write_text(text, encoding="utf-8")
    reason = "no global passive adversary fits on one machine"
    row = "seed §1.2 Traffic analysis by a global passive adversary"
    result = trace.build(world, rules=RULES, untestable={row: reason})
    assert result.problems == []
    assert f"not testable here: {reason}" in trace.render(result)


def test_a_stale_or_missing_document_fails_the_check(world: Sources) -> None:
    result = build(world)
    assert [p.kind for p in trace.check(result, world.out)] == [ProblemKind.STALE_DOC]
    world.out.write_text(trace.render(result), encoding="utf-8")
    assert trace.check(result, world.out) == []
    world.out.write_text(trace.render(result).replace("reorder", "renamed"), encoding="utf-8")
    assert [p.kind for p in trace.check(result, world.out)] == [ProblemKind.STALE_DOC]


# --- the sabotage matrix -------------------------------------------------------------------


def _matrix(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "matrix.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_sabotage_kills_join_by_scenario_name_and_test_node(
    world: Sources, tmp_path: Path,
) -> None:
    path = _matrix(tmp_path, {
        "sabotages": [
            {"name": "skip-sig", "description": "", "killed_by": [
                "tests/test_cover.py::test_keys[param-1]"]},
            {"name": "log-plaintext", "description": "", "killed_by": []},
            {"name": "module-wide", "description": "",
             "killed_by": ["tests/test_cover.py::test_unrelated"]},
            {"name": "survivor", "description": "", "killed_by": []},
        ],
        "scenarios": [{"name": "reorder", "path": "x", "kills": ["log-plaintext"]}],
    })
    result = build(world, matrix=path)
    by_id = {r.row.id: r for r in result.rows}
    assert by_id["SPEC §1 r1"].sabotages == ["skip-sig"]
    assert by_id["seed §1.1 Network adversary"].sabotages == ["log-plaintext"]
    assert by_id["SPEC §2 r1"].sabotages == ["module-wide", "skip-sig"]  # module-level cite
    assert by_id["ADR-0019"].sabotages == []
    assert result.matrix is not None
    assert trace.matrix_named_in(trace.render(result)) == result.matrix.source


@pytest.mark.parametrize(("data", "where"), [
    ([], "'sabotages' list"),
    ({"sabotages": [{"description": "x"}]}, "sabotages[0]"),
    ({"sabotages": [{"name": "a", "killed_by": "t"}]}, "sabotages[0].killed_by"),
    ({"sabotages": [], "scenarios": [{"kills": []}]}, "scenarios[0].name"),
    ({"sabotages": [], "scenarios": [{"name": "s", "kills": [1]}]}, "scenarios[0].kills"),
])
def test_a_malformed_matrix_is_a_typed_error_naming_the_field(
    world: Sources, tmp_path: Path, data: object, where: str,
) -> None:
    with pytest.raises(TraceInputError) as info:
        build(world, matrix=_matrix(tmp_path, data))
    assert where in str(info.value)


def test_a_missing_source_is_a_typed_error_naming_the_file(world: Sources) -> None:
    (world.spec).unlink()
    with pytest.raises(TraceInputError) as info:
        build(world)
    assert "SPEC.md" in info.value.source


# --- seed parsing --------------------------------------------------------------------------


def test_the_real_seed_yields_its_threats_non_guarantees_and_adrs() -> None:
    text = REPO.seed.read_text(encoding="utf-8")
    rows = trace.seed_rows(text)
    threats = [r.title for r in rows if r.group is RowGroup.THREAT]
    assert threats == ["Server-side compromise", "Network adversary", "Insider exfiltration",
                       "Lawful subpoena targeting Attomus",
                       "Endpoint compromise of a single device"]
    titles = trace.adr_titles(text)
    assert titles["ADR-0095"] == "Retention policy and enforcement"
    assert set(trace.adr_numbers(text)) == set(titles)  # every cited ADR has a §6 title


@given(st.lists(st.integers(0, 9999), min_size=1, max_size=5, unique=True),
       st.sampled_from([" / ", ", ", " and ", ", and "]))
def test_adr_groups_in_any_seed_form_yield_every_number(numbers: list[int], sep: str) -> None:
    text = "see ADRs " + sep.join(f"{n:04d}" for n in numbers) + " for details"
    assert trace.adr_numbers(text) == [f"ADR-{n:04d}" for n in numbers]


# --- the command ---------------------------------------------------------------------------


def test_sim_trace_writes_then_checks_and_fails_on_an_uncovered_row(
    world: Sources, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(trace, "SPEC_RULES", RULES)
    monkeypatch.setattr(trace, "UNTESTABLE", {})
    runner = CliRunner()
    root = str(world.root)
    wrote = runner.invoke(sim, ["trace", "--root", root, "--json", str(world.root / "t.json")])
    assert wrote.exit_code == 0, wrote.output
    assert world.out.read_text(encoding="utf-8") == trace.render(build(world))
    report = json.loads((world.root / "t.json").read_text(encoding="utf-8"))
    assert report["problems"] == [] and len(report["rows"]) == 10
    assert runner.invoke(sim, ["trace", "--root", root, "--check"]).exit_code == 0

    text = COVERING_TESTS.replace('"SPEC §1 r1", ', "")
    (world.tests / "test_cover.py").write_text(text, encoding="utf-8")
    checked = runner.invoke(sim, ["trace", "--root", root, "--check"])
    assert checked.exit_code == 1
    assert "uncovered SPEC §1 r1" in checked.output and "stale-doc" in checked.output


def test_sim_trace_check_passes_on_the_repository() -> None:
    result = CliRunner().invoke(sim, ["trace", "--root", str(ROOT), "--check"])
    assert result.exit_code == 0, result.output
