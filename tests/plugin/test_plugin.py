"""The pytest plugin as a platform team uses it (docs/pytest-plugin.md): fixtures, device
expectations, the leak oracle and scenario verdicts, each run in an inner pytest session,
with the failure messages the team would read when something is wrong."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from semafore.deploy.settings import ProviderKind
from semafore.deploy.testing import shared_provider, unavailable
from tests.plugin.helpers import PLUGIN_MODULE, run_inner

WORKED_EXAMPLE = '''
async def test_alice_messages_bob(semafore_fleet, semafore_oracle):
    alice, bob = await semafore_fleet.users("alice", "bob")
    secret = semafore_oracle.canary("alice's first message")

    await alice.send_text("bob", f"hello {secret}".encode())

    received = await bob.wait_for_message(sender="alice", text=f"hello {secret}")
    assert received.sender == "alice:phone"
    await bob.wait_for_queue_drained()
'''


def test_the_worked_example_passes_with_a_clean_oracle(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_example=WORKED_EXAMPLE)
    result = run_inner(pytester, "-v")
    result.assert_outcomes(passed=1)


def test_a_wrong_expectation_times_out_saying_what_arrived(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_wrong='''
async def test_wrong_text(semafore_fleet):
    alice, bob = await semafore_fleet.users("alice", "bob")
    await alice.send_text("bob", b"hello bob")
    await bob.wait_for_message(sender="alice", text="goodbye", timeout=1)
''')
    result = run_inner(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "E * semafore.client.expect.ExpectationTimeout: bob:phone waited 1 s for a message "
        "from alice saying 'goodbye'; it never came.",
        "*what bob:phone saw instead:",
        "E * - message from alice:phone (text) 'hello bob' [[]message_id *[]]",
    ])
    assert "(field: message)" not in result.stdout.str()


def test_a_message_from_someone_else_does_not_meet_the_expectation(
        pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_sender='''
async def test_wrong_sender(semafore_fleet):
    alice, bob = await semafore_fleet.users("alice", "bob")
    (carol,) = await semafore_fleet.users("carol")  # enrolled into the same organisation
    await carol.send_text("bob", b"hi")
    await bob.wait_for_message(sender="alice", text="hi", timeout=1)
''')
    result = run_inner(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*bob:phone waited 1 s for a message from alice saying 'hi'; it never came.",
        "*- message from carol:phone (text) 'hi'*",
    ])


def test_each_wait_claims_one_message(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_claims='''
from semafore.client.expect import ExpectationTimeout
from semafore.protocol.address import DeviceAddress
import pytest

async def test_two_sends_need_two_waits(semafore_fleet):
    alice, bob = await semafore_fleet.users("alice", "bob")
    await alice.send_text("bob", b"ping")
    await alice.send_text("bob", b"ping")
    first = await bob.wait_for_message(sender="alice:phone", text="ping")
    second = await bob.wait_for_message(sender=DeviceAddress("alice", "phone"), text=b"ping")
    assert first.content.message_id != second.content.message_id
    with pytest.raises(ExpectationTimeout) as caught:
        await bob.wait_for_message(text="ping", timeout=0.5)
    assert caught.value.field == "message"
''')
    result = run_inner(pytester)
    result.assert_outcomes(passed=1)


@pytest.mark.parametrize("push_batch", [0, 64])
def test_the_queue_is_drained_only_after_the_backlog_arrived(
        pytester: pytest.Pytester, push_batch: int) -> None:
    """One frame per envelope, and batched push (the SDK's default ``?batch=64``, where the
    ``queue_empty`` reply may ride in a ``batch`` frame)."""
    pytester.makepyfile(test_drain='''
async def test_backlog(semafore_fleet):
    await semafore_fleet.org("acme", ["alice", "bob"])
    alice = await semafore_fleet.device("alice:phone")
    bob = await semafore_fleet.device("bob:phone", connect=False)
    for n in range(5):
        await alice.send_text("bob", f"queued {n}".encode())
    bob.push_batch = PUSH_BATCH
    bob.connect()
    await bob.wait_for_queue_drained()
    assert [r.content.body for r in bob.inbox] == [f"queued {n}".encode() for n in range(5)]
    assert bob.counters.push_frames == (1 if PUSH_BATCH else 5)
'''.replace("PUSH_BATCH", str(push_batch)))
    result = run_inner(pytester)
    result.assert_outcomes(passed=1)


def test_a_tampered_envelope_is_a_decryption_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_tamper='''
import base64

async def test_bit_flip(semafore_fleet):
    alice, bob = await semafore_fleet.users("alice", "bob")
    await alice.send_text("bob", b"first")
    await bob.wait_for_message(sender="alice", text="first")
    withheld = await alice.send_text("bob", b"second", withhold=True)
    body = bytearray(withheld.envelopes["bob:phone"])
    body[-1] ^= 0x01
    await alice.http.json("PUT", "/v1/messages/bob", json={
        "message_id": "tampered-1",
        "envelopes": [{"device_id": "phone",
                       "registration_id": alice.directory["bob"].devices["phone"],
                       "body": base64.b64encode(bytes(body)).decode()}]})
    error = await bob.wait_for_decryption_error(sender="alice")
    assert error.kind == "undecryptable" and error.peer == "alice:phone"
    assert error.message_id == "tampered-1"
''')
    result = run_inner(pytester)
    result.assert_outcomes(passed=1)


def test_a_missing_decryption_error_times_out(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_no_error='''
async def test_none(semafore_fleet):
    alice, bob = await semafore_fleet.users("alice", "bob")
    await alice.send_text("bob", b"fine")
    await bob.wait_for_decryption_error(sender="alice", error="BadMac", timeout=1)
''')
    result = run_inner(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*bob:phone waited 1 s for a decryption error BadMac on a frame from alice; "
        "it never came.",
        "*- message from alice:phone (text) 'fine'*",
    ])


LEAK_TEST = '''
from semafore.sabotage import switched_on

async def test_preview_in_message_id(semafore_fleet, semafore_oracle):
    alice, bob = await semafore_fleet.users("alice", "bob")
    secret = semafore_oracle.canary("launch code")
    with switched_on("client.push_preview"):
        await alice.send_text("bob", secret.encode())
    await bob.wait_for_message(sender="alice", text=secret)
'''


def test_a_leak_fails_the_test_at_oracle_teardown(pytester: pytest.Pytester) -> None:
    """A client that puts a notification preview of the text into the relay-visible message
    id (sabotage ``client.push_preview``) leaks the canary into the relay's stores."""
    pytester.makepyfile(test_leak=LEAK_TEST)
    result = run_inner(pytester)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines([
        "*ERROR at teardown of test_preview_in_message_id*",
        "*OracleLeak: semafore_oracle: * leak(s) in * bytes of relay logs and stores:",
        "*- launch code (canary) in store at memory:*, 30/30 bytes via raw",
    ])


def test_an_oracle_with_nothing_to_look_for_fails(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_empty='''
async def test_nothing(semafore_relay, semafore_oracle):
    assert semafore_relay.url.startswith("http://127.0.0.1:")
''')
    result = run_inner(pytester)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*OracleInconclusive: semafore_oracle: nothing to look for*"])


FAILING_SCENARIO = """\
version: 1
name: claims-undelivered
description: bob's phone is online, yet the file claims the message never reached it.
cites: ["docs/pytest-plugin.md"]
seed: 7
organisations:
  - id: acme
users:
  - {id: alice, org: acme, devices: [phone]}
  - {id: bob, org: acme, devices: [phone]}
steps:
  - send: {from: alice:phone, to: bob, label: hello}
  - sync: {}
  - assert: {not_delivered: {messages: [hello], devices: [bob:phone]}}
"""

PASSING_SCENARIO = FAILING_SCENARIO.replace("claims-undelivered", "delivered").replace(
    "is online, yet the file claims the message never reached it",
    "is online and the message reaches it").replace(
    "not_delivered: {messages: [hello], devices: [bob:phone]}",
    "delivered_exactly_once: {messages: all}")


def test_a_failing_scenario_verdict_lists_the_failing_assertion(
        pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", **{"claims-undelivered": FAILING_SCENARIO})
    pytester.makepyfile(test_scenario='''
def test_catalogue(semafore_scenario):
    semafore_scenario.run("claims-undelivered.yaml")
''')
    result = run_inner(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*ScenarioFailed: scenario claims-undelivered (*claims-undelivered.yaml): verdict "
        "fail, expected pass: not_delivered (line 14) violated*",
        "E * assertion not_delivered (line 14) violated: 1 problem(s) in 1 (message, device) "
        "pairs",
        "E * hello -> bob:phone: delivered",
    ])
    assert "no running event loop" not in result.stdout.str()


def test_a_passing_scenario_returns_its_result(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", delivered=PASSING_SCENARIO)
    pytester.makepyfile(test_scenario='''
async def test_catalogue(semafore_scenario):
    result = await semafore_scenario("delivered.yaml")
    assert result.verdict.value == "pass"
''')
    result = run_inner(pytester)
    result.assert_outcomes(passed=1)


def test_relay_settings_come_from_the_marker(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_marker='''
import pytest
from semafore.client import ServerRejected
from semafore.protocol.address import AddressArgumentError, DeviceAddress

@pytest.mark.semafore_relay(max_devices_per_user=1)
async def test_one_device_each(semafore_fleet):
    await semafore_fleet.org("acme", ["alice"])
    with pytest.raises(AddressArgumentError, match="^ref: 'alice/phone'.*'alice:phone'"):
        await semafore_fleet.device("alice/phone")  # one spelling: user:device
    await semafore_fleet.device("alice:phone")
    with pytest.raises(ServerRejected) as refused:
        await semafore_fleet.device(DeviceAddress("alice", "laptop"))
    assert refused.value.status in (409, 429, 403)
''')
    result = run_inner(pytester)
    result.assert_outcomes(passed=1)


def test_an_unknown_organisation_is_refused_by_name(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_org='''
async def test_org(semafore_fleet):
    await semafore_fleet.org("umbrella", ["alice"])
''')
    result = run_inner(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*PluginError: organisation 'umbrella' is not one the relay accepts the test OTP for "
        "(acme, globex, initech; ini option semafore_test_orgs)",
    ])


RELAY_ORGS = ("acme", "acme-2", "globex")
"""What the served relay allow-lists: the plugin's default organisations as a test signs
them up (acme, then globex) and as scenarios are allotted them (acme, acme-2)."""


@pytest.fixture
def served_relay(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """``semafore serve`` in its own process on 127.0.0.1 (what a team's own relay is to the
    plugin), its log in a file; stopped after the test."""
    with serving(tmp_path) as relay:
        yield relay


@contextlib.contextmanager
def serving(tmp_path: Path, *store: str, env: dict[str, str] | None = None
            ) -> Iterator[tuple[str, Path]]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = tmp_path / "relay.log"
    with log.open("wb") as sink:
        relay = subprocess.Popen(
            [sys.executable, "-m", "semafore.cli.main", "serve", "--port", str(port),
             "--test-mode", *(f"--test-org={org}" for org in RELAY_ORGS),
             "--retention-interval", "0", *store],
            stdout=subprocess.DEVNULL, stderr=sink, env={**os.environ, **(env or {})})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and relay.poll() is None:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    pass
            except OSError:
                time.sleep(0.1)  # polling a child process start-up, not timing the code
                continue
            if httpx.get(f"{url}/v1/health", timeout=5).status_code == 200:
                break
        else:
            pytest.fail(f"semafore serve did not answer: {log.read_text()[-2000:]}")
        yield url, log
    finally:
        relay.terminate()
        relay.wait(30)


def test_a_relay_given_by_url_is_used_and_its_log_scanned(
        pytester: pytest.Pytester, served_relay: tuple[str, Path]) -> None:
    url, log = served_relay
    pytester.makepyfile(test_example=WORKED_EXAMPLE + '''

async def test_the_relay_is_the_given_one(semafore_relay):
    assert semafore_relay.server is None and semafore_relay.url == "{url}"
'''.replace("{url}", url))
    result = run_inner(pytester, "--semafore-relay", url, "--semafore-relay-log", str(log))
    result.assert_outcomes(passed=2)
    assert "alice" not in log.read_text()  # pseudonymised, yet the relay logged the traffic
    assert "login" in log.read_text()


def test_a_relay_by_url_without_its_log_leaves_the_oracle_inconclusive(
        pytester: pytest.Pytester, served_relay: tuple[str, Path]) -> None:
    url, _ = served_relay
    pytester.makepyfile(test_example=WORKED_EXAMPLE)
    result = run_inner(pytester, "--semafore-relay", url)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*OracleInconclusive: semafore_oracle: nothing to look in*"])


@pytest.mark.backend
def test_real_backends_are_what_the_oracle_scans(pytester: pytest.Pytester) -> None:
    """``--semafore-provider local``: the relay runs on real Redis, MongoDB (or FerretDB) and
    SeaweedFS processes, and the oracle finds the leaked canary in their raw dumps."""
    pytester.makepyfile(test_local='''
from semafore.sabotage import switched_on

async def test_preview_in_message_id(semafore_fleet, semafore_oracle):
    alice, bob = await semafore_fleet.users("alice", "bob")
    secret = semafore_oracle.canary("launch code")
    with switched_on("client.push_preview"):
        await alice.send_text("bob", secret.encode())
    await bob.wait_for_message(sender="alice", text=secret)
    report, scanned = await semafore_oracle.scan()
    assert {"mongodb", "redis", "seaweedfs"} <= set(report.bytes_by_tier)
''')
    result = run_inner(pytester, "--semafore-provider", "local", "-rs")
    if result.parseoutcomes().get("skipped"):
        unavailable("local backends: " + result.stdout.str()[-500:])
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*OracleLeak: semafore_oracle: * leak(s) in * bytes*",
                                 "*- launch code (canary) in redis at redis:*"])
    assert "in store at memory:" not in result.stdout.str()


def test_the_plugin_is_declared_as_a_pytest11_entry_point() -> None:
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    assert pyproject["project"]["entry-points"]["pytest11"] == {"semafore": PLUGIN_MODULE}


def test_draining_needs_a_connected_device(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_offline='''
import pytest
from semafore.client import TransportError

async def test_offline(semafore_fleet):
    await semafore_fleet.org("acme", ["bob"])
    bob = await semafore_fleet.device("bob:phone", connect=False)
    with pytest.raises(TransportError) as refused:
        await bob.wait_for_queue_drained(timeout=1)
    assert refused.value.field == "connection"
''')
    run_inner(pytester).assert_outcomes(passed=1)


def test_a_relay_by_url_refuses_backends_it_does_not_run_on(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_url="async def test_x(semafore_relay):\n    pass\n")
    result = run_inner(pytester, "--semafore-relay", "http://127.0.0.1:9", "--semafore-provider",
                       "local")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*PluginError: --semafore-relay runs on its own backends: "
                                 "--semafore-provider local would start others*"])


def test_a_wait_started_before_the_send_is_woken_by_the_delivery(
        pytester: pytest.Pytester) -> None:
    """The real receive path notifies waiting expectations: a wait allowed an hour returns
    once the message is in (bounded at 60 s so a missing wake-up fails instead of hanging)."""
    pytester.makepyfile(test_wake='''
import asyncio

async def test_wake(semafore_fleet):
    alice, bob = await semafore_fleet.users("alice", "bob")
    waiting = asyncio.create_task(bob.wait_for_message(sender="alice", timeout=3600))
    await alice.send_text("bob", b"wake up")
    received = await asyncio.wait_for(waiting, 60)
    assert received.content.body == b"wake up"
''')
    run_inner(pytester).assert_outcomes(passed=1)


def test_an_installed_entry_point_loads_the_plugin_with_no_option(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """What ``pip install`` gives a platform team: a distribution whose ``pytest11`` entry
    point is pyproject's; pytest loads the plugin from it, no ``-p``, no conftest."""
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    declared = pyproject["project"]["entry-points"]["pytest11"]
    dist = tmp_path / "site" / "semafore_probe-0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: semafore-probe\nVersion: 0\n")
    (dist / "entry_points.txt").write_text(
        "[pytest11]\n" + "".join(f"{name} = {value}\n" for name, value in declared.items()))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "site"))
    pytester.makepyfile(test_example=WORKED_EXAMPLE)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--semafore-provider",
                                           "embedded", timeout=300)
    result.assert_outcomes(passed=1)


@pytest.mark.backend
def test_a_relay_by_url_on_external_backends_has_them_scanned(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """``--semafore-relay URL --semafore-provider external``: the oracle dumps the backends
    the relay process really runs on (its SEMAFORE_*_URL), and finds the leaked canary."""
    backends = shared_provider(ProviderKind.LOCAL).endpoints.as_env()
    with serving(tmp_path, "--store", "backends:pluginext", env=backends) as (url, log):
        for name, value in backends.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("SEMAFORE_NAMESPACE", "pluginext")  # only this relay's keys
        pytester.makepyfile(test_leak=LEAK_TEST)
        result = run_inner(pytester, "--semafore-relay", url, "--semafore-provider",
                           "external", "--semafore-relay-log", str(log))
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*OracleLeak: semafore_oracle: * leak(s) in * bytes*",
                                 "*- launch code (canary) in redis at redis:*pluginext*"])


def test_a_log_that_is_not_the_relays_makes_the_oracle_inconclusive(
        pytester: pytest.Pytester, served_relay: tuple[str, Path], tmp_path: Path) -> None:
    """A log file that never mentions the test organisation is someone else's (or logged
    above INFO): a clean scan of it would prove nothing."""
    url, _ = served_relay
    other = tmp_path / "other.log"
    other.write_text('{"event": "relay_started"}\n')
    pytester.makepyfile(test_example=WORKED_EXAMPLE)
    result = run_inner(pytester, "--semafore-relay", url, "--semafore-relay-log", str(other))
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*OracleInconclusive: semafore_oracle: the scan is incomplete: "
                                 "no line of *other.log mentions the test organisation 'acme'*"])


def test_scenarios_run_on_a_relay_given_by_url(
        pytester: pytest.Pytester, served_relay: tuple[str, Path]) -> None:
    """``--semafore-relay``: the scenario's cast signs up on that relay (its test
    organisation ``acme``); a passing file passes and a failing one fails as on the
    in-process relay."""
    url, log = served_relay
    pytester.makefile(".yaml", delivered=PASSING_SCENARIO,
                      **{"claims-undelivered": FAILING_SCENARIO})
    pytester.makepyfile(test_scenario='''
async def test_passes(semafore_scenario):
    result = await semafore_scenario("delivered.yaml")
    assert result.verdict.value == "pass"

def test_fails(semafore_scenario):
    semafore_scenario.run("claims-undelivered.yaml")
''')
    result = run_inner(pytester, "--semafore-relay", url, "--semafore-relay-log", str(log))
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*ScenarioFailed: scenario claims-undelivered *: verdict "
                                 "fail, expected pass: not_delivered (line 14) violated*"])


def test_tests_sharing_a_relay_by_url_get_organisations_of_their_own(
        pytester: pytest.Pytester, served_relay: tuple[str, Path]) -> None:
    """A relay by URL keeps its data: the second test's users() signs up the next free test
    organisation, and asking for one an earlier test signed up is refused by name."""
    url, _ = served_relay
    pytester.makepyfile(test_shared='''
import pytest
from simulator.pytest_plugin import PluginError

async def test_first(semafore_fleet):
    alice, bob = await semafore_fleet.users("alice", "bob")
    assert alice.org_id == "acme"
    await alice.send_text("bob", b"one")
    await bob.wait_for_message(sender="alice", text="one")

async def test_second(semafore_fleet):
    carol, dan = await semafore_fleet.users("carol", "dan")
    assert carol.org_id == "globex"
    await carol.send_text("dan", b"two")
    await dan.wait_for_message(sender="carol", text="two")

async def test_third(semafore_fleet):
    with pytest.raises(PluginError, match="'acme' was signed up on .* by an earlier test"):
        await semafore_fleet.org("acme", ["erin"])
''')
    result = run_inner(pytester, "--semafore-relay", url)
    result.assert_outcomes(passed=3)


TYPED_EXAMPLE = '''
from semafore.client import Received
from simulator.pytest_plugin import LeakOracle, PlatformFleet


async def test_alice_messages_bob(semafore_fleet: PlatformFleet,
                                  semafore_oracle: LeakOracle) -> None:
    alice, bob = await semafore_fleet.users("alice", "bob")
    secret = semafore_oracle.canary("alice's first message")
    await alice.send_text("bob", f"hello {secret}".encode())
    received: Received = await bob.wait_for_message(sender="alice", text=f"hello {secret}")
    assert received.sender == "alice:phone"
    await bob.wait_for_queue_drained()
'''


def test_the_worked_example_type_checks_against_the_fixture_types(tmp_path: Path) -> None:
    """A platform team on ``mypy --strict`` annotates the fixtures with the plugin's types
    (from a checkout: ``MYPYPATH`` is the checkout, an editable install hides it from mypy)."""
    test = tmp_path / "test_typed.py"
    test.write_text(TYPED_EXAMPLE)
    checked = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent",
         "--cache-dir", str(tmp_path / "cache"), str(test)],
        capture_output=True, text=True, timeout=600, check=False,
        env={**os.environ, "MYPYPATH": str(Path(__file__).parents[2])})
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_queue_that_does_not_drain_times_out_and_drains_once_processed(
        pytester: pytest.Pytester) -> None:
    """While bob's client is stuck (its receive lock held: nothing pushed is processed or
    acked) the relay never reports his queue empty; once he gets on with it, it does."""
    pytester.makepyfile(test_stuck='''
import pytest
from semafore.client.expect import ExpectationTimeout

async def test_stuck(semafore_fleet):
    alice, bob = await semafore_fleet.users("alice", "bob")
    async with bob._receive_lock:
        await alice.send_text("bob", b"stuck")
        with pytest.raises(ExpectationTimeout) as stuck:
            await bob.wait_for_queue_drained(timeout=1)
    assert stuck.value.field == "queue_drained"
    assert str(stuck.value).startswith(
        "bob:phone waited 1 s for the relay to report its queue empty; it never came.")
    await bob.wait_for_queue_drained()
    assert [r.content.body for r in bob.inbox] == [b"stuck"]
''')
    run_inner(pytester).assert_outcomes(passed=1)


def test_the_documented_worked_example_is_the_one_tested() -> None:
    """docs/pytest-plugin.md says its example runs here: keep them the same text."""
    doc = (Path(__file__).parents[2] / "docs" / "pytest-plugin.md").read_text()
    block = doc.split("```python\n# tests/test_messaging.py\n", 1)[1].split("```", 1)[0]
    assert block.strip() == WORKED_EXAMPLE.strip()
