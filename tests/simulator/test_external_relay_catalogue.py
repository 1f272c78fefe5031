"""The whole catalogue against ``semafore serve`` in its own process (issue #15 item 0): every
scenario reaches the verdict it reaches on the in-process relay, except those unsupported
against an external relay, and those are exactly the ones listed here, each for its reason.

The in-process verdict is the one the scenario's file expects (``pass``, or
``exposed-as-documented`` for ``expect: exposed``): tests/simulator/test_scenario_catalogue_runs.py
runs every catalogue scenario on the embedded provider and holds it to exactly that, with no
known exception. So the external verdict is compared with the expected one, and the
in-process run is not repeated here (measured: about a fifth of this test's time).

Each scenario gets a fresh relay process started as its ``infrastructure`` says
(:func:`simulator.external.serve_flags`: allow-list, rate limits, header deadline, log
pseudonyms; an OTP sink; its own SQLite store and log file, both granted to the oracle as
``--relay-store-file`` and ``--relay-log``): a relay holding only that run keeps the raw store
files the oracle scans small, as the in-process relay's fresh stores are.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from semafore.gate.live import RelayAccess
from simulator.external import VIEW_SOURCES, ExternalRelay, on_relay, run_orgs, serve_flags
from simulator.report import Verdict
from simulator.scenario import Expectation, discover, load
from tests.simulator.test_external_relay import served_relay

ROOT = Path(__file__).resolve().parents[2] / "scenarios"

UNSUPPORTED: dict[str, str] = {
    # stem -> what the reason names
    "backend-restarts-mid-delivery": "infra restart redis",
    "redis-primary-failover-during-delivery": "requires.shape",
    "redis-cluster-primary-failover-during-delivery": "requires.shape",
    "seaweedfs-volume-lost-during-attachment-delivery": "requires.shape",
    "redis-replication-partition-then-failover": "requires.shape",
    "server-restart-mid-delivery": "infra restart server",
    "replica-killed-mid-delivery": "2 server replicas",
    "replica-paused-then-unpaused": "2 server replicas",
    "replica-rolling-restart": "3 server replicas",
    "duplicated-http-requests": "send_retries_answered",
    "lost-send-response": "send_retries_answered",
}

KNOWN: dict[str, str] = {
    # stem -> why the external verdict differs today (strict: fixed, the entry must go)
}


def _params() -> list[object]:
    return [pytest.param(path, id=path.stem, marks=[pytest.mark.xfail(
        strict=True, reason=KNOWN[path.stem])] if path.stem in KNOWN else [])
        for path in discover([ROOT])]


@pytest.mark.slow
@pytest.mark.parametrize("path", _params())
def test_catalogue_scenario_reaches_its_in_process_verdict_on_an_external_relay(
        path: Path, tmp_path: Path) -> None:
    from simulator.executor import run_scenario

    scenario = load(path)
    orgs = tuple(run_orgs([scenario], "cat"))
    renamed = on_relay(scenario, orgs)
    sink = tmp_path / "otp-sink"
    sink.mkdir()
    flags = [*serve_flags(renamed), "--otp-sink", str(sink)]
    if renamed.infrastructure.log_hash == "keyed":
        key = tmp_path / "log-hash.key"
        key.write_text(secrets.token_hex(32))
        flags += ["--log-hash-key-file", str(key)]
    with served_relay(tmp_path, list(orgs), flags=flags) as relay:
        access = RelayAccess(files=(relay.store_dir,), logs=(relay.log,))
        external = run_scenario(scenario, relay=ExternalRelay(relay.url, "cat", access,
                                                              otp_sink=sink),
                                relay_orgs=orgs)
    if path.stem in UNSUPPORTED:
        assert external.verdict is Verdict.UNSUPPORTED, external.to_dict()
        assert UNSUPPORTED[path.stem] in (external.unsupported or "") + " ".join(
            a.summary for a in external.assertions), external.to_dict()
        return
    in_process = Verdict.EXPOSED if scenario.expect is Expectation.EXPOSED else Verdict.PASS
    assert external.verdict is in_process, (external.verdict, external.to_dict()["reason"])
    needed = {source for step in scenario.compromises()
              for source in VIEW_SOURCES.get(step.compromise, ())}
    assert needed <= set(external.scanned), (external.scanned, external.not_scanned)
