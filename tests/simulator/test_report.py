"""Verdicts and their renderings: the verdict rules (docs/scenarios.md#verdicts), and every
output format parses and carries what a reviewer needs (JUnit via xml.etree, JSON via json,
the HTML report's sections)."""

from __future__ import annotations

import json
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from rich.console import Console

from simulator.inventory import AdversaryInventory
from simulator.oracle import Hit
from simulator.report import (
    AdversaryView,
    Outcome,
    ScenarioResult,
    SourceSummary,
    Verdict,
    render,
    to_html,
    to_json,
    to_junit,
)
from simulator.scenario import Assertion, Scenario, loads

HEAD = """\
version: 1
name: {name}
cites: ["seed §1.1"]
{expect}
users:
  - {{id: alice, devices: [phone]}}
  - {{id: bob, devices: [phone, laptop]}}
steps:
"""


def scenario(steps: str, name: str = "demo", expect: str = "") -> Scenario:
    text = HEAD.format(name=name, expect=expect) + textwrap.indent(textwrap.dedent(steps), "  ")
    file = f"scenarios/threats/{name}.yaml"
    return loads(text, file=file, path=Path(file))


PASSING = """\
- send: {from: alice/phone, to: bob, label: m}
- compromise: {kind: server, as: root}
- assert: {delivered_exactly_once: {messages: all}}
- assert: {adversary_decrypts_nothing: {adversary: root}}
"""
EXPOSING = """\
- send: {from: alice/phone, to: bob, label: m}
- compromise: {kind: all_devices, user: bob, as: seized}
- assert: {exposed: {adversary: seized, messages: all, documented: "seed §1.2"}}
"""


def result_for(
    steps: str, *outcomes: Outcome, expect: str = "", name: str = "demo"
) -> ScenarioResult:
    s = scenario(steps, name=name, expect=expect)
    r = ScenarioResult.for_scenario(s, provider="embedded")
    for step, outcome in zip(s.assertions(), outcomes, strict=False):
        r.record(step, outcome, f"{outcome.value} summary", ["evidence line"])
    return r


def test_fresh_result_lists_every_assertion_as_not_run_and_fails() -> None:
    r = result_for(PASSING)
    assert [a.outcome for a in r.assertions] == [Outcome.NOT_RUN, Outcome.NOT_RUN]
    assert r.verdict is Verdict.FAIL


@pytest.mark.parametrize(
    ("outcomes", "verdict"),
    [
        ((Outcome.HELD, Outcome.HELD), Verdict.PASS),
        ((Outcome.HELD, Outcome.VIOLATED), Verdict.FAIL),
        ((Outcome.HELD,), Verdict.FAIL),  # second never evaluated
        ((Outcome.ERROR, Outcome.HELD), Verdict.ERROR),
        ((Outcome.HELD, Outcome.EXPOSED), Verdict.FAIL),  # exposure where none is expected
    ],
)
def test_verdict_rules_for_pass_scenarios(outcomes: tuple[Outcome, ...], verdict: Verdict) -> None:
    assert result_for(PASSING, *outcomes).verdict is verdict


def test_documented_exposure() -> None:
    assert (
        result_for(EXPOSING, Outcome.EXPOSED, expect="expect: exposed").verdict is Verdict.EXPOSED
    )
    # the exposure was not reproduced: the scenario is blind or the claim changed
    assert result_for(EXPOSING, Outcome.VIOLATED, expect="expect: exposed").verdict is Verdict.FAIL


def test_any_oracle_hit_fails_even_if_every_assertion_held() -> None:
    r = result_for(PASSING, Outcome.HELD, Outcome.HELD)
    r.oracle_hits.append(Hit("log", "server.log:line 7", 12, "raw", "message m.1", "canary"))
    assert r.verdict is Verdict.FAIL
    assert "server.log:line 7" in r.to_dict()["reason"]


def test_error_and_skip() -> None:
    r = result_for(PASSING, Outcome.HELD, Outcome.HELD)
    r.error = "redis did not start"
    assert r.verdict is Verdict.ERROR and r.to_dict()["reason"] == "redis did not start"
    s = result_for(PASSING)
    s.skipped = "not applicable"
    assert s.verdict is Verdict.SKIPPED and s.verdict.ok
    assert (
        ScenarioResult.load_error("x.yaml", "bad", provider="local", seed=0).verdict
        is Verdict.ERROR
    )


def test_record_rejects_a_step_that_is_not_an_assertion_of_this_scenario() -> None:
    r = result_for(PASSING)
    other = scenario(EXPOSING, expect="expect: exposed").assertions()[0]
    stray = Assertion(index=99, line=1, assertion=other.assertion)
    with pytest.raises(KeyError):
        r.record(stray, Outcome.HELD)


def rich_results() -> list[ScenarioResult]:
    good = result_for(PASSING, Outcome.HELD, Outcome.HELD, name="good")
    good.event(0, "send", "m: alice/phone -> bob (2 envelopes)", envelopes=2)
    good.event(40.5, "compromise", "root holds every store")
    good.adversaries.append(
        AdversaryView(
            "root",
            "server",
            1,
            "every store, every log line, every relayed byte",
            [SourceSummary("mongodb", 12, 4096), SourceSummary("log", 30, 2100)],
            envelopes_tried=2,
        )
    )
    good.oracle_scanned = {"mongodb": 4096, "log": 2100}
    good.inventory.append(
        AdversaryInventory(
            "root",
            "server",
            raw={"user": ["alice", "bob"]},
            hashed={"device": ["bob/phone"]},
            where={"alice": ["mongodb"]},
            graph=[("alice", "bob")],
            timestamps=3,
            first_seen="2026-01-01T00:00:00.000+00:00",
            last_seen="2026-01-01T00:00:01.000+00:00",
            items={"mongodb": 12},
            bytes={"mongodb": 4096},
        )
    )
    leaky = result_for(PASSING, Outcome.HELD, Outcome.HELD, name="leaky")
    leaky.oracle_hits.append(
        Hit("mongodb", "sf.envelopes/<e1>", 33, "base64(align 1)", "message m.1 <alice>", "canary")
    )
    exposed = result_for(EXPOSING, Outcome.EXPOSED, expect="expect: exposed", name="exposed")
    broken = result_for(PASSING, Outcome.HELD, Outcome.VIOLATED, name="broken")
    return [good, leaky, exposed, broken]


def test_json_report_round_trips() -> None:
    doc = json.loads(to_json(rich_results()))
    assert doc["format"] == "semafore-sim-report/1" and doc["ok"] is False
    assert doc["summary"] == {
        "pass": 1,
        "fail": 2,
        "exposed-as-documented": 1,
        "error": 0,
        "skipped": 0,
        "unsupported": 0,
        "total": 4,
    }
    good, leaky = doc["scenarios"][0], doc["scenarios"][1]
    assert good["verdict"] == "pass" and good["assertions"][0]["outcome"] == "held"
    assert good["inventory"][0]["sees"]["communication_graph"] is True
    assert leaky["oracle_hits"][0]["location"] == "sf.envelopes/<e1>"


def test_junit_report_parses_and_maps_verdicts() -> None:
    root = ET.fromstring(to_junit(rich_results()))
    suite = root.find("testsuite")
    assert suite is not None and suite.get("tests") == "4" and suite.get("failures") == "2"
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert cases["good"].find("failure") is None and cases["exposed"].find("failure") is None
    failure = cases["leaky"].find("failure")
    assert failure is not None and failure.get("type") == "oracle-hit"
    assert "sf.envelopes/<e1>" in (failure.text or "")
    assert cases["broken"].find("failure") is not None
    props = {p.get("name"): p.get("value") for p in cases["exposed"].iter("property")}
    assert props["verdict"] == "exposed-as-documented"
    assert cases["good"].get("classname") == "scenarios.threats"


def test_html_report_is_self_contained_and_has_every_section() -> None:
    html = to_html(rich_results())
    for section in (
        'id="summary"',
        'class="timeline"',
        'class="assertions"',
        'class="adversaries"',
        'class="oracle"',
        'class="inventory"',
    ):
        assert section in html
    assert "sf.envelopes/&lt;e1&gt;" in html and "<alice>" not in html  # escaped
    assert "alice ↔ bob" in html and "every store, every log line" in html
    assert "exposed-as-documented" in html and "gate: failed" in html
    for external in ("<script src", "<link ", "http://", "https://"):
        assert external not in html


def test_terminal_report_names_failures_and_locations() -> None:
    console = Console(record=True, width=200)
    render(rich_results(), console)
    text = console.export_text()
    assert "leaky" in text and "sf.envelopes/<e1>" in text and "broken" in text
    assert "pass=1" in text and "fail=2" in text
