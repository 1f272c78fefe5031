"""The account-plane attacks against a relay in another process, reached only by URL (issue 13
item 6: "replay the attacks against the production server"). Each test starts
``semafore serve --test-mode --test-org sandbox --otp-sink DIR`` with the production rate
limits, enrols a real (not allow-listed) organisation through the public API with the
reference client, and runs one attack function against the URL: it fails there, with
evidence. (A sabotage cannot be switched on in another process, by design; the in-process
runs in test_account_plane.py show each attack succeeding against its weakness, and so
does a relay process that a test starts with the sabotage switched on in its own code.)"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from semafore.client import Account, SystemClock, create_organisation, enrol_members
from semafore.protocol.entropy import SeededEntropy
from simulator.attacks import Arena, Outcome, judge, request_for, run_attack
from simulator.attacks.wire import Wire
from tests.serving import wait_until_serving

ORG = "acme"
DEVICES = {"alice": ("phone",), "bob": ("phone",), "mallory": ("phone",)}


SABOTAGED_SERVE = (
    "import sys\n"
    "from semafore.sabotage import switched_on\n"
    "from semafore.cli.serve import command\n"
    "with switched_on(sys.argv[1]):\n"
    "    command.main(sys.argv[2:], standalone_mode=False)\n"
)
"""``semafore serve`` with one sabotage switched on in that process (test only: the library
has no outside switch)."""

WEAKNESS = {
    "test_otp_escape": "relay.test_otp_any_org",
    "cross_org_enrolment": "relay.enrol_without_consent",
    "stranger_lockout": "relay.login_throttle_by_user",
    "otp_guessing": "relay.otp_unlimited_guesses",
    "socket_amplification": "relay.socket_cap_off",
    "queue_flood": "relay.queue_quota_off",
    "opk_drain": "relay.opk_quota_per_requester",
    "slowloris": "relay.header_timeout_off",
}


@pytest.fixture
def relay(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[str, Path]]:
    """A fresh relay process per test (rate-limit windows run on its real clock), with the
    sabotage the test is parametrized with (``indirect``), if any."""
    sabotage: str | None = getattr(request, "param", None)
    sink = tmp_path / "sink"
    sink.mkdir()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEMAFORE_")}
    options = ["--port", str(port), "--test-mode", "--test-org", "sandbox", "--otp-sink",
               str(sink), "--header-timeout", "1", "--log-level", "warning"]
    argv = ([sys.executable, "-c", SABOTAGED_SERVE, sabotage, *options] if sabotage
            else [sys.executable, "-m", "semafore.cli.main", "serve", *options])
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(url, proc)
        yield url, sink
    finally:
        proc.terminate()
        proc.wait(10)


def arena(url: str, sink: Path) -> Arena:
    return Arena(url=url, org_of=dict.fromkeys(DEVICES, ORG), devices_of=DEVICES,
                 test_orgs=frozenset({"sandbox"}), otp_sink=sink, clock=time.time, tag="ext")


async def enrol(where: Arena) -> None:
    """The operator's side, public API only: acme signed up, its members enrolled, and
    each member's phone installed with published keys (codes from the OTP sink)."""

    async def codes(org_id: str, user_id: str) -> str:
        async with Wire(where, "127.0.0.1") as wire:
            return await wire.code_for(org_id, user_id)

    entropy = SeededEntropy("external-relay")
    out = await create_organisation(where.url, ORG, "Acme", "boss", entropy.fork("org"))
    clock = SystemClock()
    admin = Account(ORG, "boss", where.url, entropy.fork, clock, codes,
                    totp_secret=str(out["totp_secret"]), opk_count=1)
    console = await admin.add_device("console", connect=False)
    await enrol_members(console, ORG, list(DEVICES), seats=10)
    accounts = [admin]
    for user in ("alice", "bob"):
        account = Account(ORG, user, where.url, entropy.fork, clock, codes, opk_count=20)
        await account.add_device("phone", connect=False)
        accounts.append(account)
    for account in accounts:
        await account.close()


CASES: dict[str, tuple[dict[str, str], dict[str, int | float | str]]] = {
    "test_otp_escape": ({"victim": "alice"}, {"test_org": "sandbox"}),
    "cross_org_enrolment": ({"victim": "alice"}, {}),
    "stranger_lockout": ({"victim": "alice"}, {"requests": 40}),
    "otp_guessing": ({"victim": "alice"}, {"guesses": 10}),
    "socket_amplification": ({}, {"sockets": 12, "max_open": 4}),
    "queue_flood": ({"actor": "mallory", "victim": "bob"}, {"sends": 150}),
    "opk_drain": ({"actor": "mallory", "victim": "bob"}, {"fetches": 30}),
    "slowloris": ({}, {"connections": 20, "hold_s": 3.0, "trickle_s": 0.5}),
}


def attacked(kind: str, where: Arena) -> Outcome:
    who, params = CASES[kind]

    async def attack() -> Outcome:
        await enrol(where)
        request = request_for(kind, who.get("actor"), who.get("victim"), params)
        return await run_attack(kind, where, request)

    return asyncio.run(attack())


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(CASES))
def test_the_attack_fails_against_a_relay_process_by_url(
        kind: str, relay: tuple[str, Path]) -> None:
    outcome = attacked(kind, arena(*relay))
    failed, summary = judge(outcome)
    assert failed is True, (summary, outcome.evidence())
    assert outcome.attempts > 0 and not outcome.gains


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "relay"), sorted(WEAKNESS.items()), indirect=["relay"])
def test_the_attack_succeeds_against_a_relay_process_with_its_weakness(
        kind: str, relay: tuple[str, Path]) -> None:
    outcome = attacked(kind, arena(*relay))
    failed, summary = judge(outcome)
    assert failed is False, (summary, outcome.evidence())
