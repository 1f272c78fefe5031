"""The Redis replication link as a fault target (semafore.deploy.replication_link; issue #16
item 5): a partition between primary and replica only, on real redis-server processes (a
primary, a replica, three Sentinels) — never mocks. A missing redis-server skips locally and
fails in CI (semafore.deploy.testing).

What it must show: while the link is cut the primary keeps acknowledging writes the replica
never gets, so a failover then loses them (the check can fail: with the link intact the same
write survives the failover); healed, the replica catches up.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from semafore.deploy.errors import InfraError
from semafore.deploy.health import local_redis
from semafore.deploy.replication_link import ReplicationLink
from semafore.deploy.sentinel import SentinelGroup
from semafore.deploy.testing import redis_server_binary, started_redis_server, unavailable


@pytest.fixture
def group(tmp_path: Path) -> Iterator[SentinelGroup]:
    """A primary, its replica and three Sentinels of this test's own (it kills the primary)."""
    primary, port = started_redis_server(tmp_path, "primary")
    made = SentinelGroup(redis_server_binary(), tmp_path, primary, port, replica_args=[])
    try:
        made.start()
    except InfraError as exc:
        made.stop()
        primary.stop()
        unavailable(str(exc))
    yield made
    made.stop()
    primary.stop()


def _get(port: int, key: str) -> bytes | None:
    with local_redis(port) as client:
        value = client.get(key)
    assert value is None or isinstance(value, bytes)
    return value


def _eventually(check: object, timeout: float = 10.0) -> bool:
    """Poll ``check`` (a no-argument callable) until it is true or ``timeout`` passes."""
    assert callable(check)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return bool(check())


def _write_then_fail_over(
    group: SentinelGroup, link: ReplicationLink, *, cut: bool
) -> bytes | None:
    """Write a key on the primary (acknowledged), kill the primary, wait for the promotion:
    the key's value on the promoted replica."""
    primary = group.primary_port()
    if cut:
        assert link.cut() == {"cut": 1}
        assert link.cut() == {}  # already cut: nothing changes
        assert link.routed()
    with local_redis(primary) as client:
        assert client.set("acked", b"yes") is True  # the primary acknowledges it
    if not cut:  # intact: it reaches the replica (asynchronously)
        assert group.replica is not None
        assert _eventually(lambda: _get(group.replica.port, "acked") == b"yes")
    assert group.node(primary).process.kill() == {"killed": 1}
    promoted = group.wait_promoted(primary)
    return _get(promoted, "acked")


@pytest.mark.backend
@pytest.mark.parametrize("cut", [True, False])
def test_a_write_acknowledged_while_the_link_is_cut_is_lost_by_the_failover(
    group: SentinelGroup, cut: bool
) -> None:
    link = ReplicationLink(group)
    try:
        assert _write_then_fail_over(group, link, cut=cut) == (None if cut else b"yes")
    finally:
        link.close()


@pytest.mark.backend
def test_a_healed_link_lets_the_replica_catch_up(group: SentinelGroup) -> None:
    link = ReplicationLink(group)
    assert group.replica is not None
    replica = group.replica.port
    try:
        assert link.heal() == {}  # not cut: nothing to heal
        assert link.cut() == {"cut": 1}
        with local_redis(group.primary_port()) as client:
            client.set("during-cut", b"1")
        proxy = link.proxy
        assert proxy is not None
        assert _eventually(lambda: proxy.stats.refused >= 1)  # the replica tried: refused
        assert _get(replica, "during-cut") is None
        assert link.heal() == {"healed": 1}
        assert _eventually(lambda: _get(replica, "during-cut") == b"1")
    finally:
        link.close()
