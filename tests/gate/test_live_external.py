"""The live gate against an external relay (seed §4.5: plaintext absence on both sides of the
relay). The relay is a separate ``semafore serve`` process the gate reaches only by URL; the
oracle reads the wire always, the relay's stores and logs only when given, and every report
says which sources it scanned, so a wire-only scan never reads as a full one. A relay that
leaks must fail the gate and the report must name where the plaintext was."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from semafore.cli.gate import command as gate_command
from semafore.deploy.processes import free_ports
from semafore.deploy.settings import ProviderKind
from semafore.deploy.testing import shared_provider
from semafore.gate.live import (
    RelayAccess,
    RelayAccessError,
    _log_source,
    _store_source,
    redact,
)
from tests.gate.conftest import ROOT, python_command, reference

LEAKY = ROOT / "tests" / "gate" / "live_leaky_relay.py"


class Relay:
    """A relay process on a free loopback port; its stderr (JSON log lines) goes to ``log``."""

    def __init__(self, argv: list[str], port: int, log: Path, env: dict[str, str] | None = None):
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        self._err = log.open("wb")
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=self._err, env=env)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"relay exited with {self.proc.returncode}: {log.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/v1/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        self.stop()
        pytest.fail(f"relay never answered on {self.url}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._err.close()


def serve(tmp: Path, *orgs: str, store: str | None = None,
          env: dict[str, str] | None = None) -> Relay:
    """``semafore serve`` in test mode for ``orgs`` (on SQLite under ``tmp/db`` by default)."""
    port = free_ports(1)[0]
    (tmp / "db").mkdir(exist_ok=True)
    argv = [sys.executable, "-m", "semafore.cli.main", "serve", "--test-mode",
            *(arg for org in orgs for arg in ("--test-org", org)),
            "--port", str(port), "--store", store or f"sqlite:{tmp / 'db' / 'relay.db'}"]
    return Relay(argv, port, tmp / "relay.log", env)


@pytest.fixture
def sqlite_relay(tmp_path: Path) -> Iterator[Relay]:
    relay = serve(tmp_path, "ext-full")
    yield relay
    relay.stop()


def gate(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        gate_command, ["live", "--impl", f"ref={reference().command}", *args],
        catch_exceptions=False,
    )
    return result.exit_code, result.output


def test_an_external_relay_with_store_and_log_access_gets_a_full_scan(
    sqlite_relay: Relay, tmp_path: Path
) -> None:
    code, output = gate(
        "--relay", sqlite_relay.url, "--org", "ext-full",
        "--relay-store-file", str(tmp_path / "db"), "--relay-log", str(sqlite_relay.log),
        "--json", str(tmp_path / "l.json"), "--junit", str(tmp_path / "l.xml"),
        "--html", str(tmp_path / "l.html"),
    )
    assert code == 0, output
    flat = " ".join(output.split())
    assert "clean — FULL scan (wire, stores (files:" in flat and "NOT scanned" not in flat
    oracle = json.loads((tmp_path / "l.json").read_text())["oracle"]
    assert oracle["passed"] and oracle["complete"], oracle["errors"]
    assert oracle["scanned"] == ["wire", "stores", "logs"]
    # each source really was read: the SQLite files (database + WAL), every byte of the log
    # (streamed as one file), the wire
    assert oracle["bytes_by_tier"]["file"] > 0 and oracle["items_by_tier"]["file"] >= 2
    assert oracle["bytes_by_tier"]["log"] == len(sqlite_relay.log.read_bytes())
    assert oracle["items_by_tier"]["log"] == 1
    assert oracle["items_by_tier"]["wire"] >= 20
    assert oracle["canaries"] >= 20 and oracle["identifiers"] >= 20
    stores = oracle["sources"]["stores"]
    assert list(stores["parts"]) == [f"files:{tmp_path / 'db'}"]
    assert stores["not_scanned"]["mongodb"] == "not given (--relay-mongo)"
    assert "mention org ext-full" in stores["parts"][f"files:{tmp_path / 'db'}"]
    assert str(sqlite_relay.log) in oracle["sources"]["logs"]["parts"]
    suite = ET.parse(tmp_path / "l.xml").getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "0"
    assert not list(suite.iter("skipped"))
    assert "FULL scan" in (tmp_path / "l.html").read_text()


def test_a_wire_only_scan_says_so_everywhere_and_require_source_fails_it(
    sqlite_relay: Relay, tmp_path: Path
) -> None:
    code, output = gate(
        "--relay", sqlite_relay.url, "--org", "ext-full", "--require-source", "stores",
        "--json", str(tmp_path / "l.json"), "--junit", str(tmp_path / "l.xml"),
        "--html", str(tmp_path / "l.html"),
    )
    doc = json.loads((tmp_path / "l.json").read_text())
    assert all(cell["verdict"] == "pass" for cell in doc["cells"])  # the conversations worked
    assert code == 1, output  # but the operator required the stores and gave none
    oracle = doc["oracle"]
    assert oracle["ran"] and oracle["clean"] and not oracle["passed"]
    assert not oracle["complete"] and oracle["scanned"] == ["wire"]
    assert "not given" in oracle["not_scanned"]["stores"]
    assert oracle["not_scanned"]["logs"] == "not given (--relay-log)"
    assert oracle["errors"][0].startswith("stores: required (--require-source) but not scanned")
    flat = " ".join(output.split())  # rich wraps at the terminal width
    assert "PARTIAL scan: wire only; NOT scanned: stores (not given" in flat
    assert "logs (not given (--relay-log))" in flat
    suite = ET.parse(tmp_path / "l.xml").getroot().find("testsuite")
    assert suite is not None
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    assert cases["plaintext-absence/wire"].find("skipped") is None
    assert cases["plaintext-absence/stores"].find("failure") is not None
    skipped = cases["plaintext-absence/logs"].find("skipped")
    assert skipped is not None and "not given" in skipped.get("message", "")
    assert "PARTIAL scan: wire only" in (tmp_path / "l.html").read_text()


@pytest.fixture
def leaky(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Relay, str]]:
    mode = request.param
    spool = tmp_path / "spool"
    spool.mkdir()
    (tmp_path / "db").mkdir()
    port = free_ports(1)[0]
    org = f"leak-{mode}"
    relay = Relay([sys.executable, str(LEAKY), "relay", "--port", str(port), "--db",
                   str(tmp_path / "db" / "relay.db"), "--spool", str(spool), "--leak", mode,
                   "--org", org], port, tmp_path / "relay.log")
    yield relay, python_command(LEAKY, "adapter", "--spool", spool)
    relay.stop()


@pytest.mark.parametrize("leaky", ["log"], indirect=True)
def test_a_relay_that_logs_plaintext_fails_the_gate_naming_the_log_line(
    leaky: tuple[Relay, str], tmp_path: Path
) -> None:
    relay, adapter = leaky
    result = CliRunner().invoke(gate_command, [
        "live", "--impl", f"spool={adapter}", "--relay", relay.url, "--org", "leak-log",
        "--relay-log", str(relay.log), "--json", str(tmp_path / "l.json")])
    assert result.exit_code == 1, result.output
    doc = json.loads((tmp_path / "l.json").read_text())
    cell = doc["cells"][0]
    assert cell["verdict"] == "fail" and cell["step"] == "oracle", cell
    assert f"found in log {relay.log}:line " in cell["detail"]
    hits = doc["oracle"]["hits"]
    leaked = [h for h in hits if h["kind"] == "canary"]
    assert leaked and all(h["location"].startswith(f"{relay.log}:line ") for h in leaked)
    line = int(leaked[0]["location"].rsplit(" ", 1)[1])
    assert "leak_probe_plaintext" in relay.log.read_text().splitlines()[line - 1]
    # the plaintext names the sender's address, raw: the identifier check sees that too
    assert any(h["kind"] == "identifier" and h["tier"] == "log" for h in hits)
    assert doc["oracle"]["sources"]["logs"]["hits"] == len(hits)
    assert "oracle hit: canary spool->spool m1 in log" in " ".join(result.output.split())


@pytest.mark.parametrize("leaky", ["store"], indirect=True)
def test_a_relay_that_stores_plaintext_fails_the_gate_naming_the_delivery(
    leaky: tuple[Relay, str], tmp_path: Path
) -> None:
    """The relay queues the plaintext in place of an envelope: the receiver fetches it, and the
    gate's wire check (fetched envelopes are matched by SHA-256) names the delivery; the raw
    SQLite files, read after the run, still hold it too."""
    relay, adapter = leaky
    result = CliRunner().invoke(gate_command, [
        "live", "--impl", f"spool={adapter}", "--relay", relay.url, "--org", "leak-store",
        "--relay-store-file", str(tmp_path / "db"), "--relay-log", str(relay.log),
        "--json", str(tmp_path / "l.json")])
    assert result.exit_code == 1, result.output
    doc = json.loads((tmp_path / "l.json").read_text())
    hits = doc["oracle"]["hits"]
    wire = [h for h in hits if h["tier"] == "wire"]
    assert wire, hits
    assert wire[0]["location"].startswith("fetched ") and "delivery" in wire[0]["location"]
    assert wire[0]["label"] == "spool->spool m1"
    stored = [h for h in hits if h["tier"] == "file"]
    assert stored and stored[0]["location"].startswith(str(tmp_path / "db" / "relay.db"))
    assert stored[0]["label"] == "spool->spool m1"
    # the receiver could not open the plaintext it was handed: the cell names that first
    cell = doc["cells"][0]
    assert cell["verdict"] == "fail" and cell["step"] == "bootstrap"
    assert "MalformedEnvelope" in cell["detail"]


def test_stores_that_hold_no_trace_of_the_run_are_an_error_not_a_clean_scan(
    tmp_path: Path,
) -> None:
    """A wrong address or namespace would otherwise scan someone else's data and pass."""
    other = tmp_path / "other.db"
    other.write_bytes(b"SQLite format 3\x00" + b"\x00" * 100)
    scan = _store_source(RelayAccess(files=(other,)), "live-gate-77")
    assert scan.scanned and [len(spool) for _, spool in scan.spools] == [1]  # on disk
    assert any("no trace of this run's organisation 'live-gate-77'" in e for e in scan.errors)
    log = tmp_path / "old.log"
    log.write_text('{"event":"relay_started"}\n{"event":"login","org_id":"someone-else"}\n')
    logs = _log_source((log,), "live-gate-77")
    assert logs.streams == [("log", log)] and logs.parts[str(log)] == "1 file(s), 2 lines"
    assert any("no log line mentions" in e for e in logs.errors)
    log.write_text('{"event":"login","org_id":"live-gate-77","sub_h8":"0a1b2c3d"}\n')
    assert _log_source((log,), "live-gate-77").errors == []


def test_unreadable_stores_are_errors_naming_the_store_without_its_password() -> None:
    port = free_ports(1)[0]  # nothing listens there
    scan = _store_source(RelayAccess(redis_url=f"redis://gate:s3cret@127.0.0.1:{port}/0"), "o")
    assert not scan.scanned and len(scan.errors) == 1
    assert f"redis at redis://127.0.0.1:{port}/0: could not be read" in scan.errors[0]
    assert "s3cret" not in scan.errors[0]
    assert redact("mongodb://u:p@db.internal:27017/relay?tls=true") == \
        "mongodb://db.internal:27017/relay?tls=true"


def test_store_addresses_come_from_the_external_provider_environment() -> None:
    env = {"SEMAFORE_PROVIDER": "external", "SEMAFORE_MONGODB_URL": "mongodb://127.0.0.1:1",
           "SEMAFORE_REDIS_URL": "redis://127.0.0.1:2/0",
           "SEMAFORE_SEAWEEDFS_FILER_URL": "http://127.0.0.1:3",
           "SEMAFORE_SEAWEEDFS_S3_URL": "http://127.0.0.1:4", "SEMAFORE_NAMESPACE": "staging"}
    access = RelayAccess.from_env(env)
    assert access is not None and access.origin == "environment"
    assert (access.mongodb_url, access.redis_url, access.seaweedfs_filer_url,
            access.namespace) == ("mongodb://127.0.0.1:1", "redis://127.0.0.1:2/0",
                                  "http://127.0.0.1:3", "staging")
    assert RelayAccess.from_env({"SEMAFORE_PROVIDER": "embedded"}) is None


@pytest.mark.parametrize(("args", "phrase"), [
    (["--relay-log", __file__], "need an external relay URL"),
    (["--relay", "http://127.0.0.1:9", "--relay-namespace", "a b"], "letters, digits"),
    (["--relay", "http://127.0.0.1:9", "--relay-mongo", "not a url"], "not a URL"),
    (["--relay", "http://127.0.0.1:9", "--require-source", "disk"], "disk"),
])
def test_access_options_are_checked_before_anything_runs(args: list[str], phrase: str) -> None:
    result = CliRunner().invoke(gate_command, ["live", *args])
    assert result.exit_code == 2, result.output
    assert phrase in " ".join(result.output.split())


def test_invalid_access_is_a_typed_error_naming_the_option(tmp_path: Path) -> None:
    with pytest.raises(RelayAccessError) as err:
        RelayAccess(logs=(tmp_path / "missing.log",))
    assert err.value.field == "--relay-log"


def test_an_unreachable_relay_is_a_setup_error_not_a_traceback() -> None:
    port = free_ports(1)[0]
    code, output = gate("--relay", f"http://127.0.0.1:{port}", "--org", "nowhere")
    assert code == 2 and "signing up organisation 'nowhere'" in output


@pytest.mark.backend
def test_a_relay_on_real_backends_gets_its_mongodb_redis_and_seaweedfs_scanned(
    tmp_path: Path,
) -> None:
    """``semafore serve --store backends:NS`` on the local provider (FerretDB, redis-server,
    weed); the gate reads the namespace through each store's own client, once from options
    and once from the ``SEMAFORE_PROVIDER=external`` environment. Without the binaries this
    skips locally and fails in CI (semafore.deploy.testing)."""
    provider = shared_provider(ProviderKind.LOCAL)
    ns = f"livegate{os.getpid()}{int(time.time()) % 100_000}"
    endpoints = provider.endpoints
    env = {**os.environ, **endpoints.as_env()}
    relay = serve(tmp_path, "be-options", "be-env", store=f"backends:{ns}", env=env)
    try:
        assert endpoints.mongodb_url and endpoints.redis_url and endpoints.seaweedfs_filer_url
        code, output = gate(
            "--relay", relay.url, "--org", "be-options", "--relay-mongo", endpoints.mongodb_url,
            "--relay-redis", endpoints.redis_url, "--relay-seaweed", endpoints.seaweedfs_filer_url,
            "--relay-namespace", ns, "--relay-log", str(relay.log),
            "--json", str(tmp_path / "options.json"))
        assert code == 0, output
        oracle = json.loads((tmp_path / "options.json").read_text())["oracle"]
        assert oracle["passed"] and oracle["complete"], oracle["errors"]
        parts = oracle["sources"]["stores"]["parts"]
        assert set(parts) == {"mongodb", "redis", "seaweedfs"}
        assert f"namespace {ns}" in parts["mongodb"] and "mention org be-options" in parts["redis"]
        assert oracle["bytes_by_tier"]["mongodb"] > 0 and oracle["bytes_by_tier"]["redis"] > 0
        assert oracle["items_by_tier"]["log"] > 0
        result = CliRunner().invoke(
            gate_command,
            ["live", "--impl", f"ref={reference().command}", "--relay", relay.url, "--org",
             "be-env", "--relay-log", str(relay.log), "--json", str(tmp_path / "env.json")],
            env={**endpoints.as_env(), "SEMAFORE_NAMESPACE": ns},
        )
        assert result.exit_code == 0, result.output
        oracle = json.loads((tmp_path / "env.json").read_text())["oracle"]
        assert oracle["passed"] and oracle["complete"], oracle["errors"]
        assert "[from SEMAFORE_* environment]" in oracle["sources"]["stores"]["parts"]["mongodb"]
        assert "mention org be-env" in oracle["sources"]["stores"]["parts"]["mongodb"]
    finally:
        relay.stop()


@pytest.mark.backend
def test_a_namespace_narrows_the_store_dumps_to_the_relays_data() -> None:
    from semafore.gate.live import _dump_mongodb, _dump_redis

    provider = shared_provider(ProviderKind.LOCAL)
    e = provider.endpoints
    assert e.mongodb_url and e.redis_url
    import pymongo
    import redis

    ns = f"nsgate{os.getpid()}"
    mongo: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(e.mongodb_url)
    r = redis.Redis.from_url(e.redis_url)
    try:
        mongo[ns]["orgs"].insert_one({"_id": "mine"})
        mongo[f"{ns}other"]["orgs"].insert_one({"_id": "theirs"})
        r.set(f"{ns}:mine", b"1")
        r.set(f"{ns}other:theirs", b"2")
        assert {i.source for i in _dump_mongodb(e.mongodb_url, ns)} == \
            {f"mongodb:{ns}.orgs/'mine'"}
        keys = {i.source for i in _dump_redis(e.redis_url, ns)
                if not i.source.startswith("redis-file:")}
        assert keys and all(f"{ns}:mine" in k for k in keys)
    finally:
        mongo.drop_database(ns)
        mongo.drop_database(f"{ns}other")
        mongo.close()
        r.delete(f"{ns}:mine", f"{ns}other:theirs")
        r.close()
