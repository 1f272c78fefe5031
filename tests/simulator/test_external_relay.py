"""Scenarios against an external relay by URL (issue #15 item 0, simulator.external).

The relay is ``semafore serve`` in its own process (127.0.0.1, a free port, an SQLite store
and a log file of its own, test mode for the run's organisations): the harness reaches it only
through its public API, and reads its store and log only when they are granted
(``--relay-store-file``, ``--relay-log``), exactly as ``gate live --relay URL`` does.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from semafore.gate.live import RelayAccess
from semafore.protocol.address import DeviceAddress
from simulator.external import (
    ExternalRelay,
    ExternalRelayError,
    RelayHooks,
    on_relay,
    qualify,
    run_orgs,
)
from simulator.report import Outcome, ScenarioResult, Verdict
from simulator.scenario import discover, load
from simulator.scenario.model import Assertion, AssertionKind, Scenario

ROOT = Path(__file__).resolve().parents[2] / "scenarios"
START_BUDGET_S = 30.0


@dataclasses.dataclass
class ServedRelay:
    """A ``semafore serve`` process and what its operator can grant: store and log."""

    url: str
    store_dir: Path
    log: Path
    proc: subprocess.Popen[bytes]

    def access(self) -> RelayAccess:
        return RelayAccess(files=(self.store_dir,), logs=(self.log,))


@contextlib.contextmanager
def served_relay(tmp: Path, orgs: list[str], *,
                 flags: list[str] | None = None) -> Iterator[ServedRelay]:
    """``semafore serve`` on 127.0.0.1 port 0 (the port it prints), SQLite store, log to a
    file; test mode for ``orgs`` without rate limits (every simulated device is 127.0.0.1),
    or exactly ``flags`` (:func:`simulator.external.serve_flags`)."""
    store_dir = tmp / "relay-store"
    store_dir.mkdir()
    log = tmp / "relay.log"
    if flags is None:
        flags = ["--test-mode", "--test-no-rate-limits",
                 *(arg for org in orgs for arg in ("--test-org", org))]
    argv = [sys.executable, "-m", "semafore.cli.main", "serve", "--host", "127.0.0.1",
            "--port", "0", "--json", "--store", f"sqlite:{store_dir / 'relay.db'}",
            "--retention-interval", "0", *flags]
    with log.open("wb") as log_file:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log_file,
                                stdin=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # printed once the socket is bound
        if not line:
            raise AssertionError(f"semafore serve exited {proc.wait(5)}: {log.read_text()}")
        url = json.loads(line)["url"]
        assert not url.endswith(":0"), f"serve --port 0 printed {url}"
        deadline = time.monotonic() + START_BUDGET_S
        while not _answers(url):
            assert time.monotonic() < deadline, f"{url} never answered: {log.read_text()}"
            time.sleep(0.1)
        yield ServedRelay(url, store_dir, log, proc)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)  # in case a test left it paused
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def _answers(url: str) -> bool:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=2):
            return True
    except urllib.error.HTTPError:
        return True  # it answered
    except OSError:
        return False


PAUSE_SCENARIO = """\
version: 1
name: external-pause
description: the relay's process is stopped (SIGSTOP) and continued by the operator's hooks
cites: ["seed §3.4"]
seed: 5
users:
  - {id: alice, devices: [phone]}
  - {id: bob, devices: [phone]}
steps:
  - send: {from: alice/phone, to: bob, label: before}
  - sync: {}
  - infra: {action: pause, target: server}
  - wait: {ms: 300}
  - infra: {action: unpause, target: server}
  - send: {from: bob/phone, to: alice, label: after}
  - sync: {}
  - assert: {delivered_exactly_once: {messages: all}}
  - assert: {sessions_converge: {devices: [alice/phone, bob/phone]}}
"""

FAST = ["desync/reorder.yaml", "threats/server-compromise.yaml",
        "desync/server-restart-mid-delivery.yaml"]


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedRelay]:
    with served_relay(tmp_path_factory.mktemp("external"), run_orgs(
            [load(ROOT / name) for name in FAST], "fast")
            + [f"{prefix}-{k}" if k > 1 else prefix for prefix in ("bare", "pause", "hook")
               for k in (1, 2)] + ["dup"]) as served:
        yield served


def _external(relay: ServedRelay, org: str, **options: object) -> ExternalRelay:
    return ExternalRelay(relay.url, org, **options)  # type: ignore[arg-type]


def _run(scenario: Scenario, external: ExternalRelay, orgs: tuple[str, ...]) -> ScenarioResult:
    from simulator.executor import run_scenario

    return run_scenario(scenario, relay=external, relay_orgs=orgs)


def test_external_runs_reach_the_in_process_verdicts(relay: ServedRelay) -> None:
    """A desync scenario passes against the external relay as in-process; a threat scenario
    with only the relay's log granted scans wire and logs, says the stores were not, and its
    server view's guarantees are unsupported for lack of them (never a pass on half a view).
    (The store grant: tests/simulator/test_external_relay_catalogue.py.)"""
    from simulator.executor import run_scenario

    scenarios = [load(ROOT / name) for name in FAST]
    names = iter(run_orgs(scenarios, "fast"))
    external = _external(relay, "fast", access=RelayAccess(logs=(relay.log,)))
    reorder, compromise = (
        _run(s, external, tuple(next(names) for _ in s.organisations)) for s in scenarios[:2])
    assert reorder.verdict is run_scenario(scenarios[0]).verdict is Verdict.PASS, \
        reorder.to_dict()
    assert set(reorder.scanned) == {"wire"} and reorder.relay == relay.url
    assert compromise.verdict is Verdict.UNSUPPORTED, compromise.to_dict()
    assert set(compromise.scanned) == {"wire", "logs"}
    (root,) = compromise.adversaries
    tiers = {source.tier: source.items for source in root.sources}
    assert tiers.get("log", 0) > 100 and tiers.get("wire", 0) > 0, tiers  # lines in the view
    assert set(compromise.not_scanned) == {"stores"}
    unsupported = [a for a in compromise.assertions if a.outcome is Outcome.UNSUPPORTED]
    assert {a.kind for a in unsupported} == {"adversary_decrypts_nothing", "oracle_clean"}
    assert all("operator-root: stores not given" in a.summary and "logs" not in
               a.summary.split("(what was read")[0] for a in unsupported)
    assert [a.outcome for a in compromise.assertions if a.kind == "delivered_exactly_once"] \
        == [Outcome.HELD]
    # the relay really served this run: its organisations are in its log (org ids stay raw)
    assert '"fast-2"' in relay.log.read_text()


def test_server_view_without_grants_is_unsupported_naming_the_sources(
        relay: ServedRelay, tmp_path: Path) -> None:
    """Nothing granted: the server adversary's assertions cannot hold on nothing; the
    scenario is unsupported, naming stores and logs, and ``sim run`` exits 3; every report
    says what was and was not scanned."""
    from simulator.cli.sim import command

    out = tmp_path / "report.json"
    junit = tmp_path / "report.xml"
    html = tmp_path / "report.html"
    runner = CliRunner()
    result = runner.invoke(command, ["run", str(ROOT / "threats/server-compromise.yaml"),
                                     "--relay", relay.url, "--org", "bare", "--quiet",
                                     "--json", str(out), "--junit", str(junit),
                                     "--html", str(html)])
    assert result.exit_code == 3, result.output
    doc = json.loads(out.read_text())
    (scenario,) = doc["scenarios"]
    assert scenario["verdict"] == "unsupported"
    assert not doc["ok"]
    unsupported = [a for a in scenario["assertions"] if a["outcome"] == "unsupported"]
    assert unsupported and all("stores not given" in a["summary"] and "logs not given"
                               in a["summary"] for a in unsupported)
    assert set(scenario["not_scanned"]) == {"stores", "logs"}
    assert "wire" in scenario["scanned"]
    printed = " ".join(result.output.split())
    assert "stores scanned in 0 of 1 scenario(s); not scanned: not given (--relay-mongo" in printed
    assert "wire scanned in 1 of 1 scenario(s)" in printed
    assert 'type="unsupported"' in junit.read_text() and "[not scanned] logs" in junit.read_text()
    assert "v-unsupported" in html.read_text() and "not scanned: stores" in html.read_text()


def test_a_step_needing_the_relay_process_is_unsupported_without_a_hook() -> None:
    scenario = load(ROOT / "desync/server-restart-mid-delivery.yaml")
    external = ExternalRelay("http://127.0.0.1:9", "x")
    (why,) = external.unsupported(scenario)
    restart = next(s for s in scenario.all_steps() if s.kind == "infra")
    assert f"infra restart server (line {restart.line})" in why
    assert "--relay-hook restart=COMMAND" in why
    with_hook = dataclasses.replace(external, hooks=RelayHooks.parse(["restart=true"]))
    assert with_hook.unsupported(scenario) == []
    assert "leaky relay" in external.unsupported(load(ROOT / "desync/reorder.yaml"), "log")[0]
    replicas = load(ROOT / "desync/replica-paused-then-unpaused.yaml")
    assert any("2 server replicas" in w for w in with_hook.unsupported(replicas))


def test_an_organisation_that_exists_is_a_setup_error_asking_for_a_fresh_org(
        relay: ServedRelay) -> None:
    scenario = load(ROOT / "desync/reorder.yaml")
    assert _run(scenario, _external(relay, "dup"), ("dup",)).verdict is Verdict.PASS
    again = _run(scenario, _external(relay, "dup"), ("dup",))
    assert again.verdict is Verdict.ERROR
    assert "signing up organisation 'dup'" in (again.error or "")
    assert "--test-org dup" in (again.error or "") and "fresh --org" in (again.error or "")


def test_unsupported_scenario_is_not_run_and_never_passes(relay: ServedRelay) -> None:
    scenario = load(ROOT / "desync/server-restart-mid-delivery.yaml")
    result = _run(scenario, _external(relay, "bare"), ("bare-2",))
    assert result.verdict is Verdict.UNSUPPORTED and not result.verdict.ok
    assert result.timeline == [] and "infra restart server" in (result.unsupported or "")


def test_hooks_pause_and_continue_the_relay_process(relay: ServedRelay, tmp_path: Path) -> None:
    """The operator's hooks act on the real process (SIGSTOP / SIGCONT); each is recorded as
    a fault that fired, with its command."""
    path = tmp_path / "external-pause.yaml"
    path.write_text(PAUSE_SCENARIO)
    hooks = RelayHooks.parse([f"pause=kill -STOP {relay.proc.pid}",
                              f"resume=kill -CONT {relay.proc.pid}"], timeout_s=10)
    result = _run(load(path), _external(relay, "pause", hooks=hooks), ("pause",))
    assert result.verdict is Verdict.PASS, result.to_dict()
    assert [f.fired for f in result.faults] == [True, True]
    assert "hook pause" in result.faults[0].description
    assert f"kill -STOP {relay.proc.pid}" in result.faults[0].description


def test_a_hook_that_fails_or_hangs_is_a_fault_that_never_fired(relay: ServedRelay,
                                                                 tmp_path: Path) -> None:
    path = tmp_path / "external-pause.yaml"
    path.write_text(PAUSE_SCENARIO)
    hooks = RelayHooks.parse(["pause=false", "unpause=sleep 30"], timeout_s=0.5)
    result = _run(load(path), _external(relay, "hook", hooks=hooks), ("hook",))
    assert result.verdict is Verdict.ERROR
    assert [f.fired for f in result.faults] == [False, False]
    assert "exited 1" in result.faults[0].description
    assert "timed out" in result.faults[1].description


def test_renaming_reaches_every_user_reference_of_the_catalogue() -> None:
    """Every device reference, recipient and selector names a relay user after renaming; no
    scenario user id is left (a step kind whose user field were missed would fail here)."""
    for path in discover([ROOT]):
        scenario = load(path)
        orgs = tuple(f"r-{k}" for k in range(1, len(scenario.organisations) + 1))
        renamed = on_relay(scenario, orgs)
        users = {u.id for u in renamed.users}
        assert all(u.startswith("r-") and "." in u for u in users)
        assert {u.org for u in renamed.users} <= set(orgs)
        refs = _device_addresses(renamed)
        assert refs and all(ref.user in users for ref in refs), path
        before = {u.id for u in scenario.users} | {o.id for o in scenario.organisations}
        assert not before & _strings(renamed), path
        # an allow-list names the cast's organisations by their relay names (an organisation
        # outside the cast, e.g. one an attacker claims, keeps its name)
        allowed = renamed.infrastructure.relay.test_orgs_for(orgs)
        assert not allowed & {o.id for o in scenario.organisations}, path


def _device_addresses(value: object) -> list[DeviceAddress]:
    if isinstance(value, DeviceAddress):
        return [value]
    if isinstance(value, tuple):
        return [r for item in value for r in _device_addresses(item)]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [r for f in dataclasses.fields(value)
                for r in _device_addresses(getattr(value, f.name))]
    return []


def _strings(scenario: Scenario) -> set[str]:
    found: set[str] = set()

    def walk(value: object) -> None:
        if isinstance(value, str):
            found.add(value)
            found.add(value.partition("/")[0])
        elif isinstance(value, tuple):
            for item in value:
                walk(item)
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            for f in dataclasses.fields(value):
                walk(getattr(value, f.name))

    walk((scenario.organisations, scenario.users, scenario.steps, scenario.infrastructure))
    return found


def _assertion(kind: AssertionKind) -> Assertion:
    return Assertion(index=1, line=1, assertion=kind)


GAP = {"root": {"stores": "not given (--relay-mongo)"}}


def test_a_guarantee_that_held_on_a_partial_view_is_unsupported() -> None:
    outcome, summary = qualify(_assertion(AssertionKind.ORACLE_CLEAN), Outcome.HELD,
                               "0 hit(s)", GAP, ())
    assert outcome is Outcome.UNSUPPORTED and "root: stores not given" in summary
    outcome, _ = qualify(_assertion(AssertionKind.ORACLE_CLEAN), Outcome.INCONCLUSIVE,
                         "0 bytes", GAP, ())
    assert outcome is Outcome.UNSUPPORTED
    outcome, summary = qualify(_assertion(AssertionKind.ORACLE_CLEAN), Outcome.HELD,
                               "0 hit(s)", GAP, ("stores",))
    assert outcome is Outcome.ERROR and "--require-source" in summary


def test_what_was_found_in_a_partial_view_stands() -> None:
    outcome, summary = qualify(_assertion(AssertionKind.ORACLE_CLEAN), Outcome.VIOLATED,
                               "1 hit(s)", GAP, ())
    assert outcome is Outcome.VIOLATED and "not read" in summary
    outcome, _ = qualify(_assertion(AssertionKind.METADATA_EXPOSED), Outcome.EXPOSED, "sees",
                         GAP, ())
    assert outcome is Outcome.EXPOSED
    outcome, _ = qualify(_assertion(AssertionKind.METADATA_EXPOSED), Outcome.VIOLATED, "sees",
                         GAP, ())
    assert outcome is Outcome.UNSUPPORTED  # not demonstrated in part of the view: no finding
    assert qualify(_assertion(AssertionKind.ORACLE_CLEAN), Outcome.HELD, "ok", {}, ()) == (
        Outcome.HELD, "ok")


def test_settings_are_checked_naming_the_option() -> None:
    with pytest.raises(ExternalRelayError, match="--relay-hook: unknown hook 'reboot'"):
        RelayHooks.parse(["reboot=true"])
    with pytest.raises(ExternalRelayError, match="--relay-hook"):
        RelayHooks.parse(["stop"])
    with pytest.raises(ExternalRelayError, match="--relay"):
        ExternalRelay("ftp://relay", "x")
    with pytest.raises(ExternalRelayError, match="--org"):
        ExternalRelay("http://127.0.0.1:9", "bad org")
    with pytest.raises(ExternalRelayError, match="--require-source"):
        ExternalRelay("http://127.0.0.1:9", "x", require=("disk",))
    assert RelayHooks.parse(["resume=true"]).commands == {"unpause": ("true",)}


def test_require_source_that_is_not_granted_is_a_usage_error() -> None:
    from simulator.cli.sim import command

    result = CliRunner().invoke(command, ["run", str(ROOT / "desync/reorder.yaml"), "--relay",
                                          "http://127.0.0.1:9", "--require-source", "logs"])
    assert result.exit_code == 2 and "logs not given (--relay-log)" in result.output
    result = CliRunner().invoke(command, ["run", str(ROOT / "desync/reorder.yaml"),
                                          "--relay-hook", "stop=true"])
    assert result.exit_code == 2 and "need --relay URL" in result.output


def test_test_orgs_lists_what_a_run_signs_up(tmp_path: Path) -> None:
    from simulator.cli.sim import command

    path = tmp_path / "external-pause.yaml"
    path.write_text(textwrap.dedent(PAUSE_SCENARIO))
    result = CliRunner().invoke(command, ["test-orgs", str(ROOT / "threats/insider.yaml"),
                                          str(path), "--org", "ci", "--flags"])
    assert result.output.split("\n")[:-1] == ["--test-org ci", "--test-org ci-2",
                                              "--test-org ci-3"]
