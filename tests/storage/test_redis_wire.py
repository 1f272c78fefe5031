"""The auto-pipeline's own connection (``semafore.storage.redis_wire``), on real
redis-servers: it answers what redis-py's pipeline would, command for command and in both
protocol versions; batches share one connection in order, and those submitted while a write
is unanswered leave together; a dropped connection is reopened and the batch retried; a server
that cannot serve is :class:`RedisUnavailable`, wrong credentials are not retried; behind
Sentinel a demoted primary's ``READONLY`` reconnects; and where it could not serve exactly
(TLS, a Unix socket) redis-py's pipeline stays."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, DataError, ReadOnlyError

from semafore.deploy.processes import free_ports
from semafore.deploy.testing import started_redis_server
from semafore.storage.redis_cluster import RedisUnavailable
from semafore.storage.redis_wire import Wire, wire_for

pytestmark = [pytest.mark.anyio, pytest.mark.backend]

SCRIPT = "return {1, 'two', redis.error_reply('THREE wrong'), {4, redis.status_reply('FIVE')}}"


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int]]:
    """This module's own primary (ACL users and slow scripts would disturb the shared
    server) and a replica of it (read-only)."""
    root = tmp_path_factory.mktemp("wire")
    primary, port = started_redis_server(root, "primary")
    replica, replica_port = started_redis_server(root, "replica", "--replicaof", "127.0.0.1",
                                                 str(port))
    control = redis.Redis(port=port)
    control.acl_setuser("app", enabled=True, passwords=["+s3cret"], keys=["*"], channels=["*"],
                        commands=["+@all"])
    try:
        yield port, replica_port
    finally:
        control.close()
        replica.stop()
        primary.stop()


@pytest.fixture
def port(servers: tuple[int, int]) -> int:
    return servers[0]


def client(port: int, **options: Any) -> aioredis.Redis:
    options.setdefault("retry", Retry(NoBackoff(), 1))
    return aioredis.Redis(host="127.0.0.1", port=port, **options)


@pytest.fixture
async def flushed(port: int) -> AsyncIterator[None]:
    async with client(port) as c:
        await c.flushall()
    yield


def wire(c: aioredis.Redis) -> Wire:
    w = wire_for(c)
    assert w is not None, "plain TCP: the wire serves it"
    return w


def shape(reply: Any) -> Any:
    """A reply with each error as (class, message) and each value with its type, nested:
    errors compare by identity, and ``1 == 1.0 == True``."""
    if isinstance(reply, Exception):
        return ("error", type(reply), str(reply))
    if isinstance(reply, (list, tuple)):
        return (type(reply), [shape(r) for r in reply])
    if isinstance(reply, dict):
        return (dict, {k: shape(v) for k, v in reply.items()})
    if isinstance(reply, set):
        return (set, reply)
    return (type(reply), reply)


def same(ours: list[Any], theirs: list[Any]) -> None:
    assert len(ours) == len(theirs)
    for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        assert shape(a) == shape(b), i


@pytest.mark.parametrize("protocol", [None, 2, 3])
async def test_replies_are_redis_pys_command_for_command(
    port: int, flushed: None, protocol: int | None
) -> None:
    commands: list[tuple[Any, ...]] = [
        ("SET", "s", "v"), ("GET", "s"), ("GET", "missing"), ("SET", "s", "w", "NX"),
        ("HSET", "h", "a", "1", "b", b"\x00\xff"), ("HGETALL", "h"), ("HGETALL", "missing"),
        ("ZADD", "z", 1.5, "m", 2, "n"), ("ZRANGE", "z", 0, -1), ("ZSCORE", "z", "m"),
        ("ZRANGE", "z", 0, -1, "WITHSCORES"), ("SADD", "set", "x", "y"), ("SMEMBERS", "set"),
        ("INCR", "s"), ("INCRBYFLOAT", "f", 0.25), ("EXISTS", "s", "h", "missing"),
        ("EVAL", SCRIPT, 0), ("EVALSHA", "0" * 40, 0), ("NOSUCHCOMMAND",), ("PING",),
        ("ECHO", "é\r\n"), ("DEL", "s", "h", "z", "set", "f"), ("TYPE", "s"),
    ]
    async with client(port, protocol=protocol) as c:
        async with c.pipeline(transaction=False) as pipe:
            for command in commands:
                pipe.execute_command(*command)
            theirs = await pipe.execute(raise_on_error=False)
        w = wire(c)
        try:
            ours = await w.execute(commands)
        finally:
            await w.aclose()
    same(ours, theirs)


async def test_batches_share_one_connection_in_submission_order(
    port: int, flushed: None
) -> None:
    async with client(port) as c:
        w = wire(c)
        replies = await asyncio.gather(*(w.execute([("INCR", "n")] * 3) for _ in range(200)))
        assert replies == [[3 * i + 1, 3 * i + 2, 3 * i + 3] for i in range(200)]
        assert w.connections == 1
        await w.aclose()


async def test_batches_submitted_while_a_write_is_unanswered_leave_together(
    port: int, flushed: None
) -> None:
    async with client(port) as c:
        w = wire(c)
        await w.execute([("PING",)])  # connected: the next calls submit at once
        protocol = w._protocol
        assert protocol is not None
        before = protocol.writes
        replies = await asyncio.gather(*(w.execute([("INCR", "n")]) for _ in range(5)))
        assert replies == [[1], [2], [3], [4], [5]]
        assert protocol.writes - before == 2, "the first at once, the other four together"
        await w.aclose()


async def test_a_dropped_connection_is_reopened_and_the_batch_retried(
    port: int, flushed: None
) -> None:
    async with client(port, client_name="wire-test") as c:
        w = wire(c)
        assert await w.execute([("CLIENT", "GETNAME")]) == [b"wire-test"]
        async with client(port) as killer:
            assert await killer.client_kill_filter(_type="normal") >= 1
        assert await w.execute([("SET", "k", "v"), ("GET", "k")]) == [True, b"v"]
        assert w.connections == 2
        await w.aclose()


async def test_no_server_is_unavailable_after_the_retries() -> None:
    [unused] = free_ports(1)
    async with client(unused) as c:
        w = wire(c)
        with pytest.raises(RedisUnavailable) as caught:
            await w.execute([("PING",)])
        assert caught.value.operation == "PIPELINE"
        assert w.connections == 0


async def test_wrong_credentials_are_not_retried(port: int) -> None:
    async with client(port, username="app", password="wrong",
                      retry=Retry(NoBackoff(), 5)) as c:
        w = wire(c)
        with pytest.raises(AuthenticationError):
            await w.execute([("PING",)])
        assert w.connections == 1, "one attempt: a retry cannot fix credentials"


@pytest.mark.parametrize("protocol", [2, 3])
async def test_username_password_and_database_are_the_clients(
    port: int, flushed: None, protocol: int
) -> None:
    async with client(port, username="app", password="s3cret", db=3, protocol=protocol) as c:
        w = wire(c)
        assert await w.execute([("SET", "where", "db3"), ("ACL", "WHOAMI")]) == [True, b"app"]
        await w.aclose()
    async with client(port, db=3) as db3, client(port) as db0:
        assert await db3.get("where") == b"db3"
        assert await db0.get("where") is None


async def test_a_reply_timeout_drops_the_connection(port: int) -> None:
    slow = ("local function us() local t = redis.call('TIME'); return t[1] * 1e6 + t[2] end "
            "local start = us(); repeat until us() - start >= 1e6")
    async with client(port, socket_timeout=0.3, retry=Retry(NoBackoff(), 0)) as c:
        w = wire(c)
        with pytest.raises(RedisUnavailable):
            await w.execute([("EVAL", slow, 0)])
        assert await w.execute([("PING",)]) == [True]
        assert w.connections == 2, "the late reply must not be read as the next batch's"
        await w.aclose()


async def test_readonly_reconnects_behind_sentinel_only(servers: tuple[int, int]) -> None:
    """A replica answers writes ``READONLY``: to a plain client that is the reply; behind
    Sentinel it means the primary was demoted, so the connection is dropped and the batch
    retried (on the primary the Sentinels then name)."""
    _, replica = servers
    async with client(replica) as c:
        w = wire(c)
        [reply] = await w.execute([("SET", "k", "v")])
        assert isinstance(reply, ReadOnlyError)
        w._sentinel = True
        with pytest.raises(RedisUnavailable):
            await w.execute([("SET", "k", "v")])
        assert w.connections == 2, "dropped after each attempt: the retry opened a new one"
        await w.aclose()


async def test_an_argument_redis_py_cannot_encode_is_its_data_error(port: int) -> None:
    async with client(port) as c:
        with pytest.raises(DataError):
            await wire(c).execute([("SET", "k", None)])


@pytest.mark.parametrize(
    "url", ["rediss://127.0.0.1:6379/0", "unix:///tmp/redis.sock"], ids=["tls", "unix"]
)
def test_redis_py_keeps_what_the_wire_could_not_serve_exactly(url: str) -> None:
    assert wire_for(aioredis.Redis.from_url(url)) is None


def test_a_new_event_loop_gets_a_connection_of_its_own(port: int) -> None:
    """A client used from one ``asyncio.run`` and then another (a CLI command, a test) must
    not write to a connection whose loop has ended."""
    c = client(port)
    w = wire(c)

    async def ping() -> list[Any]:
        return await w.execute([("PING",)])

    assert asyncio.run(ping()) == [True]
    assert asyncio.run(ping()) == [True]
    assert w.connections == 2
