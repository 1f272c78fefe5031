"""The executor runs scenario files against real clients and a real relay, and its adversaries
really try: these scenarios pin what they can and cannot decrypt."""

from __future__ import annotations

import logging
import textwrap

import pytest

from simulator.executor import run_scenario
from simulator.report.model import Outcome, ScenarioResult, Verdict
from simulator.scenario import loads
from tests.simulator.helpers import HEAD, scenario


def run(name: str, steps: str, seed: int = 5, expect: str = "pass") -> ScenarioResult:
    return run_scenario(scenario(name, steps, seed=seed, expect=expect))


def why(result: ScenarioResult) -> list[tuple[str, str, list[str]]]:
    return [(a.kind, a.summary, a.evidence) for a in result.assertions]


def outcomes(result: ScenarioResult) -> dict[str, Outcome]:
    return {a.kind: a.outcome for a in result.assertions}


def test_device_compromise_reads_only_that_device_and_heals_after_one_round_trip() -> None:
    result = run("device", """
    - send: {from: alice/phone, to: bob, label: early, count: 2}
    - send: {from: bob/phone, to: alice, label: early-reply}
    - compromise: {kind: device, device: bob/phone, as: thief}
    - send: {from: alice/phone, to: bob, label: during, count: 2}
    - send: {from: carol/phone, to: bob, label: other}
    - send: {from: bob/phone, to: alice, label: heal}
    - send: {from: alice/phone, to: bob, label: later, count: 2}
    - assert: {delivered_exactly_once: {messages: all}}
    - assert: {compromise_scope: {adversary: thief}}
    - assert: {forward_secrecy: {adversary: thief}}
    - assert: {post_compromise_security: {adversary: thief, round_trips: 1}}
    """)
    assert result.error is None, result.error
    assert result.verdict is Verdict.PASS, why(result)
    view = result.adversaries[0]
    opened = set(view.decrypted)
    # the in-flight chain after the compromise opens, to bob/phone only
    assert {"during.1 -> bob/phone (inbound)", "during.2 -> bob/phone (inbound)"} <= opened
    # carol's first message bootstraps against bob/phone's stolen prekeys: readable too
    assert "other -> bob/phone (inbound)" in opened
    # bob/phone's own "heal" opens from its stolen sending chains only where the peer had
    # not replied yet (SMX1 resends); nothing before the compromise, nothing after the heal
    assert all(d.endswith("-> bob/phone (inbound)") or d.startswith("heal -> ") for d in opened)
    assert not any(d.startswith(("early", "later")) for d in opened)
    assert "heal -> alice/phone (outbound)" not in opened
    assert view.envelopes_tried > len(opened)


def test_relay_side_adversaries_decrypt_nothing_and_the_oracle_is_clean() -> None:
    result = run("relay-side", """
    - send: {from: alice/phone, to: bob, label: hello, count: 2}
    - attach: {from: bob/tablet, to: alice, label: file, size: 2048}
    - compromise: {kind: server, as: root}
    - compromise: {kind: network, as: wire}
    - compromise: {kind: insider, as: ops}
    - compromise: {kind: subpoena, as: court}
    - send: {from: carol/phone, to: alice, label: after}
    - assert: {delivered_exactly_once: {messages: all}}
    - assert: {adversary_decrypts_nothing: {adversary: root}}
    - assert: {adversary_decrypts_nothing: {adversary: wire}}
    - assert: {adversary_decrypts_nothing: {adversary: ops}}
    - assert: {adversary_decrypts_nothing: {adversary: court}}
    - assert: {oracle_clean: {}}
    """)
    assert result.error is None, result.error
    assert result.verdict is Verdict.PASS, why(result)
    assert result.oracle_scanned.get("wire", 0) > 0 and result.oracle_scanned.get("log", 0) > 0
    kinds = {v.kind for v in result.adversaries}
    assert kinds == {"server", "network", "insider", "subpoena"}
    assert any(i.adversary == "root" and i.graph for i in result.inventory)


def test_all_devices_of_a_user_expose_that_users_content_as_documented() -> None:
    result = run("all-devices", """
    - send: {from: alice/phone, to: bob, label: m}
    - compromise: {kind: all_devices, user: bob, as: everything}
    - send: {from: alice/phone, to: bob, label: n, count: 2}
    - assert: {exposed: {adversary: everything, messages: [n], documented: "seed §1.2"}}
    """, expect="exposed")
    assert result.error is None, result.error
    assert outcomes(result)["exposed"] is Outcome.EXPOSED


def test_network_faults_and_a_relay_restart_still_deliver_exactly_once() -> None:
    result = run("faults", """
    - send: {from: alice/phone, to: bob, label: first}
    - network: {fault: duplicate, scope: bob/phone, direction: down}
    - send: {from: alice/phone, to: bob, label: dup, count: 3}
    - network: {fault: heal}
    - infra: {action: restart, target: server}
    - send: {from: bob/phone, to: alice, label: back}
    - sync: {}
    - assert: {delivered_exactly_once: {messages: all}}
    - assert: {sessions_converge: {devices: [alice/phone, bob/phone]}}
    """)
    assert result.error is None, result.error
    assert result.verdict is Verdict.PASS, why(result)
    assert result.stats["frames_duplicated"] >= 3 and result.stats["duplicates_dropped"] >= 3


def test_replayed_smx1_is_rejected_by_the_recipient() -> None:
    result = run("replay", """
    - send: {from: alice/phone, to: bob, label: boot}
    - send: {from: bob/phone, to: alice, label: reply}
    - replay: {message: boot, to: [bob/phone]}
    - send: {from: alice/phone, to: bob, label: after}
    - assert: {delivered_exactly_once: {messages: [boot, after]}}
    - assert: {decrypt_error: {device: bob/phone, error: DuplicateMessage, messages: [boot]}}
    """)
    assert result.error is None, result.error
    assert result.verdict is Verdict.PASS, why(result)


@pytest.mark.parametrize("provider", ["nowhere"])
def test_unsupported_provider_is_an_error_result_not_a_crash(provider: str) -> None:
    text = HEAD.format(name="p", seed=1, expect="pass", infrastructure="") + (
        "  - send: {from: alice/phone, to: bob, label: x}\n"
        "  - assert: {delivered_exactly_once: {messages: all}}\n"
    )
    result = run_scenario(loads(text), provider=provider)
    assert result.verdict is Verdict.ERROR and result.error


def transcript(result: ScenarioResult) -> str:
    return next(str(e.details["sha256"]) for e in result.timeline if e.kind == "transcript")


def test_a_seeded_scenario_produces_the_same_bytes_on_every_run() -> None:
    steps = """
    - send: {from: alice/phone, to: bob, label: a, count: 2}
    - send: {from: bob/tablet, to: [alice, carol], label: b}
    - reinstall: {device: carol/phone}
    - send: {from: alice/laptop, to: carol, label: c}
    - assert: {delivered_exactly_once: {messages: all}}
    """
    first, second = run("det", steps, seed=9), run("det", steps, seed=9)
    other = run("det", steps, seed=10)
    assert first.verdict is Verdict.PASS, why(first)
    assert transcript(first) == transcript(second)
    assert transcript(first) != transcript(other)


LOCAL_THREATS = """
- send: {from: alice/phone, to: bob, label: hello, count: 2}
- attach: {from: bob/tablet, to: alice, label: file, size: 4096}
- compromise: {kind: server, as: root}
- infra: {action: restart, target: redis}
- send: {from: carol/phone, to: alice, label: after}
- sync: {}
- assert: {delivered_exactly_once: {messages: all}}
- assert: {adversary_decrypts_nothing: {adversary: root}}
- assert: {oracle_clean: {adversaries: [root]}}
"""


@pytest.mark.cites("SPEC §8 r3")
@pytest.mark.backend
def test_server_compromise_on_real_backends_scans_mongodb_redis_and_seaweedfs() -> None:
    """On ``local`` the relay keeps its data in real MongoDB (FerretDB), Redis and SeaweedFS;
    the server view is their raw dumps, and a Redis restart mid-run loses nothing."""
    logging.getLogger("semafore.server").setLevel(logging.ERROR)
    head = HEAD.format(name="local-threats", seed=3, expect="pass", infrastructure="")
    text = head + textwrap.indent(textwrap.dedent(LOCAL_THREATS), "  ")
    result = run_scenario(loads(text), provider="local")
    assert result.error is None, result.error
    assert result.verdict is Verdict.PASS, why(result)
    for tier in ("mongodb", "redis", "seaweedfs", "log", "wire"):
        assert result.oracle_scanned.get(tier, 0) > 0, tier


@pytest.mark.cites("SPEC §8 r1", "SPEC §8 r4")
def test_the_oracle_in_the_executor_is_not_blind_to_a_leaking_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A client that "encrypts" one message as DRV1 || plaintext must fail the scenario, with
    the canary found on the wire and in the relay's store."""
    from semafore.client.device import Device

    real = Device.encrypt
    leaked: list[bytes] = []

    def leaky(self: Device, address: str, plaintext: bytes, entropy: object) -> bytes:
        if address == "carol:phone" and not leaked:
            leaked.append(plaintext)
            return b"DRV1" + plaintext
        return real(self, address, plaintext, entropy)  # type: ignore[arg-type]

    monkeypatch.setattr(Device, "encrypt", leaky)
    result = run("leak", """
    - compromise: {kind: server, as: root}
    - device_offline: {device: carol/phone}
    - send: {from: alice/phone, to: carol, label: secret}
    - assert: {oracle_clean: {adversaries: [root]}}
    """)
    assert leaked
    assert result.verdict is Verdict.FAIL
    tiers = {h.tier for h in result.oracle_hits if h.kind == "canary"}
    assert "wire" in tiers and "store" in tiers
    assert all(h.label.startswith("message secret") for h in result.oracle_hits
               if h.kind == "canary")


def test_a_scenario_for_other_providers_is_skipped_not_failed() -> None:
    text = HEAD.format(name="p", seed=1, expect="pass", infrastructure="").replace(
        "organisations:", "providers: [local]\norganisations:") + (
        "  - send: {from: alice/phone, to: bob, label: x}\n"
        "  - assert: {delivered_exactly_once: {messages: all}}\n"
    )
    result = run_scenario(loads(text), provider="embedded")
    assert result.verdict is Verdict.SKIPPED and result.skipped
