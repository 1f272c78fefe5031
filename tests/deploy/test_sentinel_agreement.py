"""What the Sentinel group calls "the primary" while the Sentinels disagree (unit, no
processes: each Sentinel's answer to ``SENTINEL get-master-addr-by-name`` is scripted).

A failover is over only once *every* live Sentinel names the new primary: a Sentinel still
holding the old configuration when the former primary is started again takes it for the
primary and makes the promoted server its replica, which then drops its data (two failover
tests failed that way in one loaded full run; ``SentinelGroup.wait_promoted``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from semafore.deploy import sentinel as sentinel_module
from semafore.deploy.errors import BackendUnavailableError
from semafore.deploy.sentinel import RedisNode, SentinelGroup


class _Alive:
    alive = True


def group_naming(answers: dict[int, int]) -> SentinelGroup:
    """A group whose Sentinels listen on the ports of ``answers`` (what they answer is the
    ``scripted`` fixture's)."""
    group = SentinelGroup(Path("redis-server"), Path("."), _Alive(), 6379,  # type: ignore[arg-type]
                          replica_args=[])
    group.sentinels = [RedisNode(_Alive(), port) for port in answers]  # type: ignore[arg-type]
    return group


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> dict[int, Any]:
    """port -> what the server there answers (a Sentinel: the primary's port; a server: its
    replication role)."""
    table: dict[int, Any] = {}

    class Client:
        def __init__(self, port: int) -> None:
            self.port = port

        def execute_command(self, *args: Any) -> list[Any]:
            return ["127.0.0.1", str(table[self.port])]

    @contextmanager
    def local_redis(port: int, timeout: float = 1.0) -> Iterator[Client]:
        yield Client(port)

    monkeypatch.setattr(sentinel_module, "local_redis", local_redis)
    monkeypatch.setattr(sentinel_module, "replication_role", lambda port: table[port])
    return table


def test_a_quorum_names_the_primary_but_a_finished_failover_needs_every_sentinel(
    scripted: dict[int, Any],
) -> None:
    scripted.update({26001: 7001, 26002: 7001, 26003: 7000, 7001: "master"})
    group = group_naming({26001: 7001, 26002: 7001, 26003: 7000})
    assert group.primary_port() == 7001  # two of three: the quorum
    with pytest.raises(BackendUnavailableError, match="disagree"):
        group.primary_port(unanimous=True)
    with pytest.raises(BackendUnavailableError, match="no failover"):
        group.wait_promoted(7000, timeout=0.2)  # the third still names the former primary
    scripted[26003] = 7001  # it learns the new configuration
    assert group.wait_promoted(7000, timeout=1.0) == 7001
