"""Sequential Redis round trips of the relay's per-envelope path, on one Redis server and
behind Sentinel (issue #16 item 4, docs/backends.md "Benchmark: embedded vs real backends"): on
a loaded machine each loopback round trip costs the relay more CPU than its own Python work, so
the steady-state send and the ack are each one script, one round trip (they were two and
three). Counted at the socket: every write redis-py makes (one per command or pipeline sent)
and every write of the auto-pipeline's own connection (``storage/redis_wire.py``, one per
batch of batches), so a call that went around the adapters would be counted too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio.connection import AbstractConnection

from semafore.deploy.errors import InfraError
from semafore.deploy.sentinel import SentinelGroup
from semafore.deploy.testing import redis_server_binary, started_redis_server, unavailable
from semafore.server import models as m
from semafore.storage.redis_wire import _Protocol
from tests.server.helpers import b64
from tests.server.test_account_cache import BODY, install, registration, send
from tests.server.test_send_limit_with_quotas import redis_namespace, relay_with_counts

pytestmark = pytest.mark.backend

PING = b"*1\r\n$4\r\nPING\r\n"


@pytest.fixture
def round_trips(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Every write to a Redis socket in this process (one per command or pipeline sent, so
    one per round trip), health-check ``PING``s left out: a list holding the count."""
    written = [0]
    wire_write = _Protocol._write_held

    def wire_counted(self: _Protocol) -> None:
        written[0] += 1
        wire_write(self)

    monkeypatch.setattr(_Protocol, "_write_held", wire_counted)
    real = AbstractConnection.send_packed_command

    async def counted(self: AbstractConnection, command: Any, check_health: bool = True
                      ) -> None:
        parts: list[bytes] = [
            p.encode() if isinstance(p, str) else bytes(p)
            for p in ([command] if isinstance(command, (bytes, str)) else command)
        ]
        if b"".join(parts) != PING:
            written[0] += 1
        await real(self, parts, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counted)
    yield written


@pytest.fixture(scope="module")
def sentinel_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A ``redis+sentinel://`` URL of a primary, its replica and three Sentinels of this
    module's own (the adapters behind Sentinel auto-pipeline as on one server)."""
    root: Path = tmp_path_factory.mktemp("sentinel")
    primary, port = started_redis_server(root, "primary")
    group = SentinelGroup(redis_server_binary(), root, primary, port, replica_args=[])
    try:
        url = group.start().url
    except InfraError as exc:
        group.stop()
        primary.stop()
        unavailable(str(exc))
    yield url
    group.stop()
    primary.stop()


@pytest.fixture(params=["redis", "sentinel"])
def redis_url(request: pytest.FixtureRequest) -> str | None:
    """None: the shared ``local`` provider's one server; else a Sentinel service's URL."""
    if request.param == "redis":
        return None
    url: str = request.getfixturevalue("sentinel_url")
    return url


def test_a_steady_state_send_is_one_round_trip(
    round_trips: list[int], redis_url: str | None
) -> None:
    """The send limit (per IP and per account), both queue quotas, the ledger entry and the
    envelopes: one script (two round trips when the limits were a call of their own)."""

    async def body() -> None:
        async with redis_namespace(redis_url) as ns, relay_with_counts(redis=ns) as (relay, _):
            alice = await install(relay, "alice", "a1")
            await install(relay, "bob", "b1")
            b1 = {"b1": await registration(relay, "bob", "b1")}
            for mid in ("warm-up", "m0"):  # the first use of a script may load it
                await send(relay, alice, mid, b1)
            envelopes = [m.EnvelopeIn.model_validate(
                {"device_id": "b1", "registration_id": b1["b1"], "body": b64(BODY)})]
            for i in range(3):
                before = round_trips[0]
                queued = await relay.accept_message(alice, "bob", f"m{i + 1}", envelopes,
                                                    "127.0.0.1")
                assert round_trips[0] - before == 1, f"send {i}"
                assert [e.delivery_id for e in queued] == [
                    e.delivery_id for e in await relay.stores.queues.fetch("bob", "b1", 10)
                ][-1:]

    asyncio.run(body())


def test_an_ack_with_its_proofs_is_one_round_trip(
    round_trips: list[int], redis_url: str | None
) -> None:
    """Removing the acked envelopes and recording their delivery proofs: one script (three
    round trips when the envelopes were read, removed and proven in turn)."""

    async def body() -> None:
        async with redis_namespace(redis_url) as ns, relay_with_counts(redis=ns) as (relay, _):
            alice = await install(relay, "alice", "a1")
            bob = await install(relay, "bob", "b1")
            b1 = {"b1": await registration(relay, "bob", "b1")}
            for i in range(4):
                await send(relay, alice, f"m{i}", b1)
            queued = [e.delivery_id for e in await relay.stores.queues.fetch("bob", "b1", 10)]
            assert await relay.ack(bob, queued[:1]) == queued[:1]  # loads the script
            for i, delivery_id in enumerate(queued[1:]):
                before = round_trips[0]
                assert await relay.ack(bob, [delivery_id, "unknown"]) == [delivery_id]
                assert round_trips[0] - before == 1, f"ack {i}"
            assert await relay.stores.queues.count("bob", "b1") == 0
            proven = await relay.stores.queues.list_deliveries("acme", None, 10)
            assert sorted(p.delivery_id for p in proven) == sorted(queued)

    asyncio.run(body())
