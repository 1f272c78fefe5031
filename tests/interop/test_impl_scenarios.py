"""Scenario devices backed by adapters (issue #15 item 1): the Go adapter and the reference
adapter process as devices of a scenario on the embedded relay, next to reference clients.

A device of an adapter that shows a wrong plaintext makes delivery fail, and one that
cannot converge makes ``sessions_converge`` fail: the adapter's answers really are checked.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from simulator.assignment import Implementation
from simulator.executor import run_with_implementations
from simulator.report.model import Outcome, Verdict
from simulator.scenario.loader import load, loads

from .conftest import GO_ADAPTER_DIR, go_tool

ROOT = Path(__file__).resolve().parents[2]
SIMULTANEOUS = ROOT / "scenarios" / "desync" / "simultaneous-initiation.yaml"

# the reference adapter, except that live.receive shows every plaintext with its first
# byte flipped and session.digest answers a digest of its own: a broken platform
BROKEN = """
import sys
from semafore.adapter import server
from semafore.adapter.ops import ReferenceAdapter

adapter = ReferenceAdapter()
receive, digest = adapter.ops["live.receive"], adapter.ops["session.digest"]

def flipped(args):
    out = receive(args)
    for item in out["messages"]:
        if item.get("plaintext"):
            text = item["plaintext"]
            item["plaintext"] = "%02x" % (int(text[:2], 16) ^ 1) + text[2:]
    return out

adapter.ops["live.receive"] = flipped
adapter.ops["session.digest"] = lambda args: {"digest": "00" * 32}
sys.exit(server.serve(sys.stdin.buffer, sys.stdout.buffer, adapter))
"""


def test_go_and_reference_devices_reach_the_reference_verdict(go_adapter: Path) -> None:
    scenario = load(SIMULTANEOUS)
    go = {"go": Implementation("go", str(go_adapter))}
    mixed = run_with_implementations(scenario, implementations=go, strategy="round-robin")
    assert sorted(mixed.implementations.values()) == ["go", "reference"]
    assert mixed.verdict is Verdict.PASS, mixed.error or [a.summary for a in mixed.assertions]
    only_go = run_with_implementations(scenario, implementations=go, strategy="go")
    assert set(only_go.implementations.values()) == {"go"}
    assert only_go.verdict is Verdict.PASS


def test_a_broken_adapter_fails_delivery_and_convergence(tmp_path: Path) -> None:
    script = tmp_path / "broken_adapter.py"
    script.write_text(BROKEN)
    broken = {"broken": Implementation("broken", f"{sys.executable} {script}")}
    result = run_with_implementations(load(SIMULTANEOUS), implementations=broken,
                                      strategy="round-robin")
    outcomes = {a.kind: a.outcome for a in result.assertions}
    assert result.verdict is Verdict.FAIL
    assert outcomes["delivered_exactly_once"] is Outcome.VIOLATED
    assert outcomes["sessions_converge"] is Outcome.VIOLATED


def test_the_reference_adapter_process_is_a_device_like_any_other() -> None:
    impl = {"py": Implementation("py", f"{sys.executable} -m semafore.adapter")}
    result = run_with_implementations(load(SIMULTANEOUS), implementations=impl,
                                      strategy="py")
    assert result.verdict is Verdict.PASS
    assert set(result.implementations.values()) == {"py"}


def test_a_step_the_adapter_lists_no_operation_for_is_unsupported_not_a_pass(
        go_adapter: Path, tmp_path: Path) -> None:
    script = tmp_path / "without.py"
    script.write_text(WITHOUT)
    result = run_with_implementations(
        load(ROOT / "scenarios" / "threats" / "subpoena.yaml"), implementations={
            "go": Implementation("go", f"{sys.executable} {script} {go_adapter} live.attach")},
        strategy="go")
    assert result.verdict is Verdict.UNSUPPORTED
    assert "step attach" in (result.unsupported or "")
    assert "does not list live.attach" in (result.unsupported or "")


# the Go adapter behind a filter that drops the operations named after it from its
# capabilities (e.g. live.stats: its devices act the same, push socket included, but report
# no counters)
WITHOUT = """
import json, subprocess, sys
go = subprocess.Popen([sys.argv[1]], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
for line in sys.stdin.buffer:
    go.stdin.write(line)
    go.stdin.flush()
    answer = go.stdout.readline()
    reply = json.loads(answer)
    if isinstance(reply.get("result"), dict) and "ops" in reply["result"]:
        reply["result"]["ops"] = [op for op in reply["result"]["ops"] if op not in sys.argv[2:]]
        answer = (json.dumps(reply) + "\\n").encode()
    sys.stdout.buffer.write(answer)
    sys.stdout.buffer.flush()
"""


@pytest.mark.parametrize(("bound", "outcome"), [(1, Outcome.HELD), (10_000, Outcome.UNSUPPORTED)])
def test_a_stat_an_adapter_does_not_report_is_a_lower_bound(
        go_adapter: Path, tmp_path: Path, bound: int, outcome: Outcome) -> None:
    """With devices of an adapter without ``live.stats``, ``skipped_keys_used`` counts the
    other devices only: enough of them proves ``at_least``; too few proves nothing
    (unsupported, never violated)."""
    script = tmp_path / "without.py"
    script.write_text(WITHOUT)
    text = (ROOT / "scenarios" / "desync" / "reorder.yaml").read_text().replace(
        "{stat: skipped_keys_used, at_least: 1}", f"{{stat: skipped_keys_used, at_least: {bound}}}")
    result = run_with_implementations(
        loads(text), implementations={
            "go": Implementation("go", f"{sys.executable} {script} {go_adapter} live.stats")},
        strategy="round-robin")
    stat = next(a for a in result.assertions
                if a.kind == "mechanism" and "skipped_keys_used" in a.summary)
    assert stat.outcome is outcome, stat.summary
    assert "not counting adapter devices" in stat.summary


def test_an_adapter_reporting_live_stats_is_counted_in_full(go_adapter: Path) -> None:
    """With ``live.stats`` the Go devices' counts join the reference devices': the bound is
    shown over every device (held or violated, never a lower bound)."""
    text = (ROOT / "scenarios" / "desync" / "reorder.yaml").read_text().replace(
        "{stat: skipped_keys_used, at_least: 1}", "{stat: skipped_keys_used, at_most: 0}")
    result = run_with_implementations(
        loads(text), implementations={"go": Implementation("go", str(go_adapter))},
        strategy="go")
    stat = next(a for a in result.assertions
                if a.kind == "mechanism" and "skipped_keys_used" in a.summary)
    assert stat.outcome is Outcome.VIOLATED, stat.summary  # the Go devices used skipped keys
    assert "not counting" not in stat.summary


DESYNC = ROOT / "scenarios" / "desync"
RESTORE = DESYNC / "restore-from-older-backup.yaml"
CLONE = DESYNC / "cloned-device.yaml"


@pytest.fixture(scope="module")
def broken_go_adapter(go_adapter: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Go adapter built with -tags brokenrestore: its state export also saves the random
    source and import puts the old nonce counter back (live/broken_restore.go)."""
    out = tmp_path_factory.mktemp("broken") / "goadapter-brokenrestore"
    env = {**os.environ, "GOTOOLCHAIN": "local", "CGO_ENABLED": "0"}
    subprocess.run([go_tool(), "build", "-tags", "brokenrestore", "-o", str(out),
                    "./cmd/goadapter"], cwd=GO_ADAPTER_DIR, env=env, check=True,
                   capture_output=True, timeout=600)
    return out


@pytest.mark.parametrize("path", [RESTORE, CLONE], ids=lambda p: p.stem)
def test_go_devices_restore_and_clone_through_the_state_operations(
        go_adapter: Path, path: Path) -> None:
    result = run_with_implementations(
        load(path), implementations={"go": Implementation("go", str(go_adapter))},
        strategy="go")
    assert result.verdict is Verdict.PASS, [(a.kind, a.summary) for a in result.assertions]


@pytest.mark.parametrize("path", [RESTORE, CLONE], ids=lambda p: p.stem)
def test_a_go_build_restoring_the_old_nonce_counter_fails(
        broken_go_adapter: Path, path: Path) -> None:
    result = run_with_implementations(
        load(path), implementations={"go": Implementation("go", str(broken_go_adapter))},
        strategy="go")
    reuse = next(a for a in result.assertions if a.kind == "no_key_nonce_reuse")
    assert reuse.outcome is Outcome.VIOLATED
    assert result.verdict is Verdict.FAIL


def test_a_clone_across_implementations_is_unsupported_naming_the_step(
        go_adapter: Path, tmp_path: Path) -> None:
    # round-robin keeps a clone on its original's implementation; an assignment file can
    # still ask for a clone across implementations
    across = tmp_path / "across.yaml"
    across.write_text("alice/phone: reference\nalice/tablet: go\n")
    result = run_with_implementations(
        load(CLONE), implementations={"go": Implementation("go", str(go_adapter))},
        strategy=str(across), seed=0)
    assert result.implementations["alice:phone"] != result.implementations["alice:tablet"]
    assert result.verdict is Verdict.UNSUPPORTED
    assert "step restore" in (result.unsupported or "")


def test_reference_adapter_devices_restore_through_the_state_operations() -> None:
    impl = {"py": Implementation("py", f"{sys.executable} -m semafore.adapter")}
    result = run_with_implementations(load(RESTORE), implementations=impl, strategy="py")
    assert result.verdict is Verdict.PASS, [(a.kind, a.summary) for a in result.assertions]


# the reference adapter, except that after every send it asks the relay for /v1/health with
# the last message key it derived in the query string, through the device's own relay URL
# (its proxy link): a platform that leaks a key onto the wire
LEAKY = """
import sys, urllib.error, urllib.request
from semafore.adapter import server
from semafore.adapter.ops import ReferenceAdapter
from semafore.protocol import secrets

adapter = ReferenceAdapter()
keys, relays = [], {}
secrets._sinks.append(lambda kind, value: keys.append(value) if kind == "message key" else None)
register, send = adapter.ops["live.register"], adapter.ops["live.send"]

def registering(args):
    relays[args.text("device")] = args.text("relay")
    return register(args)

def leaking(args):
    out = send(args)
    url = relays[args.text("device")] + "/v1/health?debug=" + keys[-1].hex()
    try:
        urllib.request.urlopen(url, timeout=10).read()
    except urllib.error.HTTPError:
        pass  # whatever the relay answers, the key crossed the wire
    return out

adapter.ops["live.register"], adapter.ops["live.send"] = registering, leaking
if "--no-secrets" in sys.argv:
    del adapter.ops["live.secrets"]
sys.exit(server.serve(sys.stdin.buffer, sys.stdout.buffer, adapter))
"""

WIRETAPPED = """
version: 1
name: wiretapped-adapter
description: a network adversary records the wire of an adapter device
cites: ["SPEC §8"]
seed: 11
users:
  - {id: alice, devices: [phone], impl: leaky}
  - {id: bob, devices: [phone], impl: leaky}
steps:
  - compromise: {kind: network, as: wiretap}
  - send: {from: alice/phone, to: bob, label: one}
  - sync: {}
  - send: {from: bob/phone, to: alice, label: two}
  - sync: {}
  - assert: {delivered_exactly_once: {messages: all}}
  - assert: {oracle_clean: {adversaries: [wiretap]}}
"""


@pytest.mark.parametrize("reports", [True, False], ids=["reports-secrets", "reports-none"])
def test_the_oracle_knows_the_keys_an_adapter_reports(tmp_path: Path, reports: bool) -> None:
    script = tmp_path / "leaky_adapter.py"
    script.write_text(LEAKY)
    command = f"{sys.executable} {script}" + ("" if reports else " --no-secrets")
    result = run_with_implementations(
        loads(WIRETAPPED), implementations={"leaky": Implementation("leaky", command)},
        strategy=None)
    assert result.implementations == {"alice:phone": "leaky", "bob:phone": "leaky"}
    clean = next(a for a in result.assertions if a.kind == "oracle_clean")
    # no reference client derives these keys: the leak on the wire is found only because
    # live.secrets reported them
    assert clean.outcome is (Outcome.VIOLATED if reports else Outcome.HELD), clean.summary


@pytest.mark.parametrize("name", [
    "threats/network-adversary",     # broadcast, attach
    "threats/server-compromise",     # attach, read_receipt, screenshot
    "desync/device-added-removed",   # remove_device
    "desync/opk-exhaustion",         # exhaust_opks with replenish, a send to several users
])
def test_the_reference_adapter_takes_the_further_operations(name: str) -> None:
    """Every device in a reference adapter process, so each step goes through contract §5's
    further operations (receipts, attachments, broadcasts, prekeys, removal, screenshots):
    the scenario passes as with in-process clients."""
    impl = {"py": Implementation("py", f"{sys.executable} -m semafore.adapter")}
    result = run_with_implementations(load(ROOT / "scenarios" / f"{name}.yaml"),
                                      implementations=impl, strategy="py")
    assert set(result.implementations.values()) == {"py"}
    assert result.verdict is Verdict.PASS, (result.unsupported, result.error, [
        (a.kind, a.summary) for a in result.assertions if a.outcome is not Outcome.HELD],
        [f.describe() for f in result.step_failures])
