"""The account-plane threat scenarios (issue 13 item 6) as specifications: each runs against
the in-process relay, its attack fails with evidence and the legitimate users keep working;
with the weakness it replays switched back on (its relay sabotage, semafore.sabotage) the
same scenario fails, its ``attack_failed`` assertion naming what the attacker gained."""

from __future__ import annotations

from pathlib import Path

import pytest

from semafore.sabotage import CATALOGUE, switched_on
from simulator.executor import run_scenario
from simulator.report import Outcome, Verdict
from simulator.report.model import ScenarioResult
from simulator.scenario import discover, load

FOLDER = Path(__file__).resolve().parents[2] / "scenarios" / "threats" / "account-plane"

WEAKNESS = {
    "test-otp-escape": "relay.test_otp_any_org",  # F-1
    "cross-org-enrolment": "relay.enrol_without_consent",  # F-2
    "stranger-lockout": "relay.login_throttle_by_user",  # F-3
    "otp-guessing": "relay.otp_unlimited_guesses",  # F-4
    "socket-amplification": "relay.socket_cap_off",  # F-5
    "queue-flood": "relay.queue_quota_off",  # F-6
    "slowloris": "relay.header_timeout_off",  # F-7
    "opk-drain": "relay.opk_quota_per_requester",  # F-9
}
"""Each scenario and the sabotage that switches its weakness back on."""


def _attack(result: ScenarioResult) -> tuple[Outcome, str, list[str]]:
    found = [a for a in result.assertions if a.kind == "attack_failed"]
    assert len(found) == 1, [a.kind for a in result.assertions]
    return found[0].outcome, found[0].summary, found[0].evidence


def test_every_scenario_of_the_folder_has_its_weakness_and_every_weakness_is_catalogued() -> None:
    assert sorted(p.stem for p in discover([FOLDER])) == sorted(WEAKNESS)
    catalogued = {s.name: s for s in CATALOGUE}
    for stem, name in WEAKNESS.items():
        assert name in catalogued
        assert f"threats/account-plane/{stem}" in catalogued[name].catches


@pytest.mark.slow
@pytest.mark.parametrize("stem", sorted(WEAKNESS))
def test_the_attack_fails_with_evidence_and_legitimate_users_keep_working(stem: str) -> None:
    result = run_scenario(load(FOLDER / f"{stem}.yaml"))
    outcome, summary, evidence = _attack(result)
    assert result.verdict is Verdict.PASS, (result.error, summary, evidence,
                                            result.step_failures)
    assert outcome is Outcome.HELD
    attempts = int(evidence[0].removeprefix("attempts: "))
    assert attempts > 0, evidence
    assert not [line for line in evidence if line.startswith("gained:")], evidence
    assert all(a.outcome is Outcome.HELD for a in result.assertions)


@pytest.mark.slow
@pytest.mark.parametrize("stem", sorted(WEAKNESS))
def test_the_same_scenario_fails_with_the_weakness_switched_back_on(stem: str) -> None:
    with switched_on(WEAKNESS[stem]):
        result = run_scenario(load(FOLDER / f"{stem}.yaml"))
    outcome, summary, evidence = _attack(result)
    assert result.verdict is Verdict.FAIL, (result.error, summary)
    assert outcome is Outcome.VIOLATED
    assert "the attack succeeded" in summary
    assert [line for line in evidence if line.startswith(("gained:", "legit "))], evidence
