"""Expected failures (ci/gate.yaml): owner + expiry, xfail/xpass, expired entries fail."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from semafore.gate.cases import GateCase
from semafore.gate.config import GateConfigError, load_config, parse_config
from semafore.gate.runner import run_gate
from semafore.gate.verdict import Verdict

from .conftest import ROOT, faulty, reference

TODAY = dt.date(2026, 11, 25)


def entry(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "impl": "skipsig",
        "case": "x3dh-prekey-v1:sig-*",
        "owner": "crypto-team@example.org",
        "expires": "2026-12-31",
        "reason": "TICKET-1: signature check missing",
    }
    base.update(overrides)
    return base


def test_committed_gate_config_is_valid_and_has_no_expired_entries() -> None:
    config = load_config(ROOT / "ci" / "gate.yaml")
    assert config.expired(dt.datetime.now(dt.UTC).date()) == []


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (entry(owner=None), "'owner' is required"),
        (entry(expires=None), "'expires' is required"),
        (entry(reason=""), "'reason' is required"),
        (entry(expires="next week"), "is not YYYY-MM-DD"),
        (entry(verdicts=["pass"]), "is not one of"),
        (entry(colour="red"), "unknown field"),
    ],
)
@pytest.mark.cites("SPEC §7 r4")
def test_incomplete_entries_are_rejected(raw: dict[str, object], message: str) -> None:
    with pytest.raises(GateConfigError, match=message):
        parse_config({"expected_failures": [raw]})


def test_an_entry_is_valid_through_its_expiry_day() -> None:
    (item,) = parse_config({"expected_failures": [entry(expires="2026-11-25")]}).expected_failures
    assert not item.expired(TODAY)
    assert item.expired(TODAY + dt.timedelta(days=1))


def test_yaml_dates_and_patterns(tmp_path: Path) -> None:
    path = tmp_path / "gate.yaml"
    path.write_text(
        "expected_failures:\n"
        "  - impl: '*'\n"
        "    case: 'dr-v1-interop:*'\n"
        "    verdicts: [unsupported]\n"
        "    owner: a@example.org\n"
        "    expires: 2027-01-01\n"
        "    reason: DR not shipped yet\n"
    )
    config = load_config(path)
    assert config.find("ios", "dr-v1-interop:ping-pong", Verdict.UNSUPPORTED) is not None
    assert config.find("ios", "dr-v1-interop:ping-pong", Verdict.FAIL) is None
    assert config.find("ios", "x3dh-prekey-v1:opk-ascii", Verdict.UNSUPPORTED) is None


def test_declared_failures_become_xfail_and_the_gate_passes(gate_cases: list[GateCase]) -> None:
    config = parse_config({"expected_failures": [entry()]})
    report = run_gate([faulty("skipsig", "skip-signature-check")], gate_cases, config, today=TODAY)

    impl = report.impls[0]
    xfails = [r for r in impl.results if r.verdict is Verdict.XFAIL]
    assert len(xfails) == 7
    assert all(r.expected_failure and r.expected_failure["owner"] for r in xfails)
    assert all(r.detail.startswith("[was fail]") for r in xfails)
    assert report.passed
    assert report.unused == []


@pytest.mark.cites("SPEC §7 r4")
def test_an_expired_entry_fails_the_gate_even_when_everything_else_passes(
    gate_cases: list[GateCase],
) -> None:
    config = parse_config({"expected_failures": [entry(expires="2026-11-24")]})
    report = run_gate([faulty("skipsig", "skip-signature-check")], gate_cases, config, today=TODAY)

    assert [r.verdict for r in report.impls[0].results].count(Verdict.XFAIL) == 7
    assert [e.case for e in report.expired] == ["x3dh-prekey-v1:sig-*"]
    assert not report.passed
    assert report.to_json()["config"]["expired"][0]["owner"] == "crypto-team@example.org"


def test_a_declared_failure_that_passes_is_xpass_and_the_entry_is_used(
    gate_cases: list[GateCase],
) -> None:
    config = parse_config(
        {"expected_failures": [entry(impl="reference", case="dr-v1-interop:ping-pong")]}
    )
    report = run_gate([reference()], gate_cases, config, today=TODAY)

    (xpass,) = [r for r in report.impls[0].results if r.verdict is Verdict.XPASS]
    assert xpass.case_id == "dr-v1-interop:ping-pong"
    assert report.passed  # xpass is a reminder to delete the entry, not a failure


def test_entries_that_match_nothing_are_reported_unused(gate_cases: list[GateCase]) -> None:
    config = parse_config({"expected_failures": [entry(impl="android")]})
    report = run_gate([reference()], gate_cases[:5], config, today=TODAY)
    assert [e.impl for e in report.unused] == ["android"]
    assert report.passed
