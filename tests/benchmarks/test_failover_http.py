"""The failover through a relay process over HTTP (benchmarks/bench_failover_http.py, issue
#16 item 5): small runs on the local provider's cluster shape (`semafore serve --store
backends` with HTTP clients; two ReplicaSet relays with WebSocket clients, the reader on the
other relay) measure every figure; on one host a SIGKILLed primary loses and doubles nothing
acknowledged (docs/backends.md "Cluster shape": the replication stream is already in the
kernel's socket buffer), and pushes cross relays again after the failover. The definitions
are shown red against lost and doubled deliveries in tests/simulator/test_failover_scenario.py.

Real redis-server, weed and FerretDB from .tools and a relay process; a missing tool skips
locally and fails in CI (semafore.deploy.testing)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.bench_failover_http import HttpFailover, one_run
from semafore.deploy.errors import FaultError, InfraError
from semafore.deploy.testing import unavailable

pytestmark = [pytest.mark.slow, pytest.mark.backend, pytest.mark.timeout(600)]


@pytest.mark.parametrize(("websocket", "serve_cli", "relays"),
                         [(False, True, 1), (True, False, 2)],
                         ids=["http-semafore-serve", "websocket-two-relays"])
def test_a_primary_killed_under_e2e_sends_is_measured(tmp_path: Path, websocket: bool,
                                                      serve_cli: bool, relays: int) -> None:
    try:
        result = one_run(tmp_path, messages=60, writers=3, kill_after=20, websocket=websocket,
                         serve_cli=serve_cli, relays=relays)
    except FaultError:  # the run itself went wrong (no kill): a failure, never a skip
        raise
    except InfraError as exc:
        unavailable(str(exc))
    assert isinstance(result, HttpFailover)
    f = result.figures
    assert f.sends == 60 and f.acknowledged + len(f.unacknowledged) == 60
    assert f.acked_before >= 20 and f.acked_after > 0  # sends on both sides of the kill
    assert f.acked_lost == () and f.duplicated == ()
    assert f.window_s is not None and f.window_s > 0  # reported, not bounded (no timing test)
    assert result.new_primary != result.former_primary  # the replica was promoted
    assert result.transport == ("websocket" if websocket else "http")
    # a delivery handed again (its ack lost in the failover) is dropped by the client as a
    # copy, never shown twice (f.duplicated is empty above)
    assert result.copies_dropped >= f.redelivered
    if websocket:  # pushes resumed across relays after the failover (the push hub followed)
        assert 0 < result.pushed_after_kill <= f.acked_after
