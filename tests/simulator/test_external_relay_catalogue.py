"""The whole catalogue against ``semafore serve`` in its own process (issue #15 item 0): every
scenario reaches the verdict it reaches on the in-process relay, except those unsupported
against an external relay, and those are exactly the ones listed here, each for its reason.

Each scenario gets a fresh relay process (its own SQLite store and log file, both granted to
the oracle as ``--relay-store-file`` and ``--relay-log``): a relay holding only that run keeps
the raw store files the oracle scans small, as the in-process relay's fresh stores are.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from semafore.gate.live import RelayAccess
from simulator.external import VIEW_SOURCES, ExternalRelay, run_orgs
from simulator.report import Verdict
from simulator.scenario import discover, load
from tests.simulator.test_external_relay import served_relay

ROOT = Path(__file__).resolve().parents[2] / "scenarios"

UNSUPPORTED: dict[str, str] = {
    # stem -> what the reason names
    "backend-restarts-mid-delivery": "infra restart redis",
    "server-restart-mid-delivery": "infra restart server",
    "replica-killed-mid-delivery": "2 server replicas",
    "replica-paused-then-unpaused": "2 server replicas",
    "replica-rolling-restart": "3 server replicas",
    "duplicated-http-requests": "send_retries_answered",
    "lost-send-response": "send_retries_answered",
}


@pytest.mark.slow
@pytest.mark.parametrize("path", discover([ROOT]), ids=lambda p: p.stem)
def test_catalogue_scenario_reaches_its_in_process_verdict_on_an_external_relay(
        path: Path, tmp_path: Path) -> None:
    from simulator.executor import run_scenario

    scenario = load(path)
    orgs = run_orgs([scenario], "cat")
    with served_relay(tmp_path, orgs) as relay:
        access = RelayAccess(files=(relay.store_dir,), logs=(relay.log,))
        external = run_scenario(scenario, relay=ExternalRelay(relay.url, "cat", access),
                                relay_orgs=tuple(orgs))
    if path.stem in UNSUPPORTED:
        assert external.verdict is Verdict.UNSUPPORTED, external.to_dict()
        assert UNSUPPORTED[path.stem] in (external.unsupported or "") + " ".join(
            a.summary for a in external.assertions), external.to_dict()
        return
    in_process = run_scenario(scenario, provider="embedded")
    assert external.verdict is in_process.verdict, (external.verdict, external.to_dict())
    needed = {source for step in scenario.compromises()
              for source in VIEW_SOURCES.get(step.compromise, ())}
    assert needed <= set(external.scanned), (external.scanned, external.not_scanned)
