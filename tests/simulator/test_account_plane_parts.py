"""The parts of the account-plane threat scenarios (issue 13 item 6) as specifications: the
loader refuses an attack that could not fail on its relay, with typed errors naming the key;
the verdict rule (no attempt is inconclusive, any gain or broken legitimate check fails);
the relay's test-only OTP sink (test mode only, members only, bound to the address); the
attacker stays on loopback."""

from __future__ import annotations

import asyncio
import json
import textwrap
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from semafore.cli.serve import command as serve
from semafore.deploy.inprocess import serve_in_task
from semafore.server.otp_sink import SINK_FILE, OtpSinkRefused, read_codes, sink_size
from semafore.server.settings import Settings
from semafore.storage.memory import memory_stores
from simulator.attacks import ATTACKS, Arena, AttackError, Outcome, Param, judge
from simulator.scenario import ScenarioError, loads
from simulator.scenario.model import Attack

HEAD = """\
version: 1
name: t
cites: ["ADR-0164"]
infrastructure:
  relay: {relay}
organisations: [{{id: acme}}, {{id: globex}}]
users:
  - {{id: alice, org: acme, devices: [phone]}}
  - {{id: mallory, org: acme, devices: [phone]}}
  - {{id: erin, org: globex, devices: [phone]}}
steps:
"""


def text(steps: str, relay: str = "{rate_limits: default, test_orgs: [sandbox]}") -> str:
    return HEAD.format(relay=relay) + textwrap.indent(textwrap.dedent(steps), "  ")


def refused(source: str) -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        loads(source)
    return info.value


# --- the loader ------------------------------------------------------------------------------


def test_an_attack_step_and_its_assertion_become_typed() -> None:
    scenario = loads(text("""\
        - attack: {kind: queue_flood, as: flood, actor: mallory, victim: alice,
                   params: {sends: 130}}
        - assert: {attack_failed: {attack: flood}}
    """))
    step = scenario.steps[0]
    assert isinstance(step, Attack)
    assert (step.attack, step.name, step.actor, step.victim) == ("queue_flood", "flood",
                                                                 "mallory", "alice")
    assert dict(step.params) == {"sends": 130}
    assert scenario.assertions()[0].attack == "flood"
    relay = scenario.infrastructure.relay
    assert (relay.rate_limits, relay.test_orgs) == ("default", ("sandbox",))
    assert relay.test_orgs_for(("acme",)) == frozenset({"sandbox"})


def test_without_a_relay_section_every_cast_org_is_a_test_org_and_limits_are_off() -> None:
    scenario = loads(HEAD.replace("infrastructure:\n  relay: {relay}\n", "").format()
                     + "  - assert: {mechanism: {stat: messages, at_most: 0}}\n")
    relay = scenario.infrastructure.relay
    assert relay.rate_limits == "unlimited"
    assert relay.test_orgs_for(("acme", "globex")) == frozenset({"acme", "globex"})


@pytest.mark.parametrize(("steps", "relay", "key", "fragment"), [
    ("- attack: {kind: phishing, as: a}", None, "steps[0].attack.kind", "unknown attack"),
    ("- attack: {kind: slowloris, as: a, params: {hold_s: 9, bogus: 1}}",
     "{header_timeout_s: 2}", "steps[0].attack.params.bogus", "unknown parameter"),
    ("- attack: {kind: queue_flood, as: a, actor: mallory, victim: alice, "
     "params: {sends: 100000}}", None, "steps[0].attack.params.sends", "at most 1000"),
    ("- attack: {kind: queue_flood, as: a, actor: mallory, victim: alice, "
     "params: {sends: many}}", None, "steps[0].attack.params.sends", "must be a int"),
    ("- attack: {kind: queue_flood, as: a, actor: mallory, victim: alice}",
     "{test_orgs: [sandbox]}", "steps[0].attack", "rate_limits: default"),
    ("- attack: {kind: queue_flood, as: a, actor: mallory, victim: erin}", None,
     "steps[0].attack.victim", "another"),
    ("- attack: {kind: queue_flood, as: a, victim: alice}", None, "steps[0].attack",
     "needs a cast user as 'actor'"),
    ("- attack: {kind: slowloris, as: a, victim: alice}", "{header_timeout_s: 2}",
     "steps[0].attack.victim", "takes no 'victim'"),
    ("- attack: {kind: otp_guessing, as: a, victim: alice}", "{test_orgs: [acme]}",
     "steps[0].attack.victim", "test-OTP allow-list"),
    ("- attack: {kind: test_otp_escape, as: a, victim: alice, params: {test_org: lab}}",
     None, "steps[0].attack.params.test_org", "infrastructure.relay.test_orgs"),
    ("- attack: {kind: slowloris, as: a, params: {hold_s: 2}}", "{header_timeout_s: 2}",
     "steps[0].attack.params.hold_s", "longer than"),
    ("- attack: {kind: slowloris, as: a}", "{}", "steps[0].attack.params.hold_s",
     "header_timeout_s"),
    ("- attack: {kind: queue_flood, as: a, actor: mallory, victim: alice, "
     "params: {sends: 100}}", None, "steps[0].attack.params.sends", "could not fail"),
    ("- attack: {kind: opk_drain, as: a, actor: mallory, victim: alice, "
     "params: {fetches: 6}}", None, "steps[0].attack.params.fetches", "could not fail"),
    ("- attack: {kind: socket_amplification, as: a, params: {sockets: 8, max_open: 8}}",
     None, "steps[0].attack.params.sockets", "could not fail"),
])
def test_an_attack_that_could_not_fail_on_its_relay_is_refused_naming_the_key(
        steps: str, relay: str | None, key: str, fragment: str) -> None:
    source = text(steps + "\n- assert: {attack_failed: {attack: a}}\n",
                  *(() if relay is None else (relay,)))
    error = refused(source)
    assert error.key == key, error
    assert fragment in error.message, error


def test_attack_failed_names_an_earlier_attack_and_names_are_unique() -> None:
    error = refused(text("- assert: {attack_failed: {attack: ghost}}\n"))
    assert error.key == "steps[0].assert.attack_failed.attack"
    twice = """\
        - attack: {kind: socket_amplification, as: s}
        - attack: {kind: socket_amplification, as: s}
        - assert: {attack_failed: {attack: s}}
    """
    assert refused(text(twice)).key == "steps[1].attack.as"


def test_the_relay_section_is_validated_by_the_schema() -> None:
    error = refused(text("- assert: {mechanism: {stat: messages, at_most: 0}}\n",
                         "{rate_limits: production}"))
    assert error.key == "infrastructure.relay.rate_limits"
    error = refused(text("- assert: {mechanism: {stat: messages, at_most: 0}}\n",
                         "{header_timeout_s: 0}"))
    assert error.key == "infrastructure.relay.header_timeout_s"


def test_every_registered_attack_declares_bounded_parameters() -> None:
    for spec in ATTACKS.values():
        assert spec.finding.startswith("F-") and spec.summary
        for param in spec.params.values():
            assert param.check(param.default) is None
            if param.kind is not str:
                assert param.maximum is not None  # every count and duration is bounded


# --- the verdict -----------------------------------------------------------------------------


@given(attempts=st.integers(0, 1000), gains=st.lists(st.text(min_size=1), max_size=3),
       legit=st.dictionaries(st.text(min_size=1), st.booleans(), max_size=3),
       undecided=st.none() | st.text(min_size=1))
def test_attack_failed_holds_only_with_attempts_no_gain_and_every_legit_check(
        attempts: int, gains: list[str], legit: dict[str, bool], undecided: str | None) -> None:
    outcome = Outcome(attempts=attempts, legit=dict(legit), undecided=undecided)
    for gain in gains:
        outcome.gained(gain)
    failed, summary = judge(outcome)
    if gains or not all(legit.values()):
        assert failed is False and "succeeded" in summary
    elif attempts == 0 or undecided is not None:
        assert failed is None  # zero evidence is never a pass (issue #11)
    else:
        assert failed is True and str(attempts) in summary


def test_a_parameter_outside_its_bounds_is_named() -> None:
    param = Param(int, 5, 1, 10)
    assert param.check(5) is None
    assert "at most 10" in str(param.check(11))
    assert "at least 1" in str(param.check(0))
    assert "must be a int" in str(param.check(True))
    assert Param(float, 1.0, 0.5, 2.0).check(1) is None


# --- the arena -------------------------------------------------------------------------------


@pytest.mark.parametrize(("changes", "field"), [
    ({"attacker_address": "10.0.0.2"}, "attacker_address"),
    ({"legit_address": "192.168.1.1"}, "legit_address"),
    ({"url": "http://relay.example:8080"}, "url"),
])
def test_the_attacker_stays_on_this_machine(changes: dict[str, str], field: str) -> None:
    options: dict[str, object] = {
        "url": "http://127.0.0.1:1", "org_of": {}, "devices_of": {},
        "test_orgs": frozenset(), "otp_sink": None, "clock": lambda: 0.0, "tag": "t"}
    with pytest.raises(AttackError) as info:
        Arena(**{**options, **changes})  # type: ignore[arg-type]
    assert info.value.field == field


# --- the OTP sink ----------------------------------------------------------------------------


def test_an_otp_sink_needs_test_mode(tmp_path: Path) -> None:
    with pytest.raises(OtpSinkRefused) as info:
        Settings(otp_sink=str(tmp_path))
    assert info.value.field == "otp_sink"
    assert Settings(otp_sink=str(tmp_path), test_mode=True).otp_sink == str(tmp_path)


def test_serve_refuses_an_otp_sink_without_test_mode(tmp_path: Path) -> None:
    result = CliRunner().invoke(serve, ["--otp-sink", str(tmp_path), "--port", "0"])
    assert result.exit_code == 2
    assert "--otp-sink needs --test-mode" in result.output


def test_the_relay_writes_members_codes_bound_to_the_asking_address(tmp_path: Path) -> None:
    async def scenario() -> list[tuple[str, str, str]]:
        settings = Settings(test_mode=True, otp_sink=str(tmp_path), retention_interval=0)
        async with serve_in_task(settings, memory_stores()) as running:
            transport = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
            async with httpx.AsyncClient(base_url=running.url, transport=transport) as http:
                signed = await http.post("/v1/orgs", json={
                    "org_id": "acme", "name": "Acme", "admin_user_id": "boss"})
                assert signed.status_code == 201
                before = sink_size(tmp_path)
                for org, user in (("acme", "boss"), ("acme", "nobody"), ("ghost", "boss")):
                    answer = await http.post("/v1/auth/otp", json={"org_id": org,
                                                                    "user_id": user})
                    assert answer.status_code == 202  # the same answer for everyone
        return [(c.org_id, c.user_id, c.address) for c in read_codes(tmp_path, before)]

    assert asyncio.run(scenario()) == [("acme", "boss", "127.0.0.2")]
    lines = (tmp_path / SINK_FILE).read_text().splitlines()
    assert len(json.loads(lines[-1])["code"]) == 6
    assert (tmp_path / SINK_FILE).stat().st_mode & 0o777 == 0o600


def test_a_sink_directory_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    from semafore.server.otp_sink import OtpSink

    with pytest.raises(OtpSinkRefused):
        OtpSink(tmp_path / "missing")
    assert read_codes(tmp_path) == [] and sink_size(tmp_path) == 0
