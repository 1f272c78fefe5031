"""Redis that cannot serve a call now - one server or the primary behind Sentinel
(``RedisUnavailable``), or a Redis Cluster with a node down mid-failover or its slot map
being rebuilt (``ClusterUnavailable``) - is ``StorageUnavailable`` to the relay, answered 503
``storage_unavailable`` with ``Retry-After`` (seed §3.5), never an unexpected 500; every other
error, ours above all, is left as it was (semafore/storage/redis_cluster.py,
docs/backends.md "Cluster shape")."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from typing import Any, NoReturn

import pytest
from redis.asyncio.connection import Connection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import (
    AuthenticationError,
    BusyLoadingError,
    ClusterDownError,
    ClusterError,
    MasterDownError,
    MaxConnectionsError,
    RedisClusterException,
    ResponseError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from semafore.client.transport import RETRY_STATUSES
from semafore.storage.memory import memory_stores
from semafore.storage.ports import StorageUnavailable
from semafore.storage.redis import RedisNamespace, RedisQueueStore
from semafore.storage.redis_cluster import (
    ClusterUnavailable,
    RedisUnavailable,
    is_torn_down_send,
    open_cluster,
    translated,
)
from semafore.storage.redis_sentinel import open_redis
from tests.server.helpers import make_world


@pytest.fixture
def dead_cluster_url() -> Iterator[str]:
    """A ``redis+cluster://`` URL whose only seed node is a loopback port bound but not
    listening: every connection is refused, as to a node killed mid-failover."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield f"redis+cluster://127.0.0.1:{s.getsockname()[1]}/0"


async def _torn_down_send() -> AttributeError:
    """The AttributeError redis-py's own connection raises when a send waits (here in its
    health check, as on an idle connection) while a concurrent ``disconnect()`` - what
    ``ClusterNode.disconnect()`` does to every connection when the cluster client resets
    itself - drops its stream writer. Real redis-py code on a real socket pair."""
    released = asyncio.Event()

    class WaitsInHealthCheck(Connection):
        async def check_health(self) -> None:
            await released.wait()

    ours, theirs = socket.socketpair()
    with ours, theirs:
        connection = WaitsInHealthCheck(host="127.0.0.1", port=1, socket_timeout=5.0)
        connection._reader, connection._writer = await asyncio.open_connection(sock=ours)
        send = asyncio.create_task(connection.send_packed_command(b"PING\r\n"))
        await asyncio.sleep(0)  # the send is past its is_connected check, in the health check
        await connection.disconnect()
        released.set()
        with pytest.raises(AttributeError) as raised:
            await send
    return raised.value


def test_the_torn_down_send_is_redis_pys_own_attribute_error() -> None:
    error = asyncio.run(_torn_down_send())
    assert error.name == "writelines" and error.obj is None
    assert is_torn_down_send(error)


def test_a_torn_down_send_is_unavailable_naming_the_operation() -> None:
    error = asyncio.run(_torn_down_send())

    async def call() -> NoReturn:
        raise error

    with pytest.raises(ClusterUnavailable) as raised:
        asyncio.run(translated("EVALSHA", call))
    assert raised.value.operation == "EVALSHA" and raised.value.cause == "AttributeError"
    assert raised.value.__cause__ is error
    assert str(raised.value) == "EVALSHA: Redis Cluster unavailable (AttributeError)"


def _raising(exc: BaseException) -> Any:
    async def call() -> NoReturn:
        raise exc

    return call


@pytest.mark.parametrize("cause", [
    RedisConnectionError("Error 111 connecting to 127.0.0.1:7000. Connection refused."),
    RedisTimeoutError("Timeout reading from socket"),
    MaxConnectionsError(),
    BusyLoadingError("LOADING Redis is loading the dataset in memory"),
    ClusterDownError("CLUSTERDOWN The cluster is down"),
    MasterDownError("MASTERDOWN Link with MASTER is down"),
    ClusterError("TTL exhausted."),
    TryAgainError("TRYAGAIN Multiple keys request during rehashing of slot"),
    SlotNotCoveredError('Slot "42" not covered by the cluster.'),
], ids=lambda e: type(e).__name__)
def test_what_a_failover_raises_is_storage_unavailable(cause: Exception) -> None:
    with pytest.raises(StorageUnavailable) as raised:
        asyncio.run(translated("GET", _raising(cause)))
    assert isinstance(raised.value, ClusterUnavailable)
    assert raised.value.operation == "GET" and raised.value.__cause__ is cause
    # still a redis-py connection error: callers catching RedisError keep catching it
    assert isinstance(raised.value, RedisConnectionError) and raised.value.retry_after == 1


def test_a_cluster_that_cannot_be_reached_from_any_seed_is_unavailable() -> None:
    """redis-py's slot-map rebuild with every seed node down raises a RedisClusterException
    from the last node's connection error."""
    try:
        try:
            raise RedisConnectionError("Connection refused.")
        except RedisConnectionError as refused:
            raise RedisClusterException("Redis Cluster cannot be connected.") from refused
    except RedisClusterException as exc:
        cause: RedisClusterException = exc
    with pytest.raises(ClusterUnavailable):
        asyncio.run(translated("GET", _raising(cause)))


def _our_bug() -> NoReturn:
    value: Any = None
    value.writelines([b"x"])  # the same message as the torn-down send, but in our code
    raise AssertionError("unreachable")


def _error_of(function: Any) -> Exception:
    try:
        function()
    except Exception as exc:
        return exc
    raise AssertionError("no error")


@pytest.mark.parametrize("error", [
    AuthenticationError("WRONGPASS invalid username-password pair"),
    ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"),
    RedisClusterException("shard_hint is deprecated in cluster mode"),
    AttributeError("raised by hand"),
    _error_of(_our_bug),
    ValueError("a bug of ours"),
], ids=lambda e: f"{type(e).__name__}:{str(e)[:20]}")
def test_other_errors_pass_unchanged(error: Exception) -> None:
    assert not is_torn_down_send(error)
    with pytest.raises(type(error)) as raised:
        asyncio.run(translated("GET", _raising(error)))
    assert raised.value is error


def test_a_command_to_an_unreachable_cluster_is_unavailable(dead_cluster_url: str) -> None:
    async def body() -> None:
        client = open_cluster(dead_cluster_url)
        try:
            with pytest.raises(ClusterUnavailable) as raised:
                await client.get("k")
            assert raised.value.operation == "GET"
            assert isinstance(raised.value.__cause__, RedisClusterException)
        finally:
            await client.aclose()

    asyncio.run(body())


def test_a_pipeline_to_an_unreachable_cluster_is_unavailable(dead_cluster_url: str) -> None:
    async def body() -> None:
        client = open_cluster(dead_cluster_url)
        try:
            with pytest.raises(ClusterUnavailable) as entered:  # the slot map, on entry
                async with client.pipeline(transaction=False):
                    pass
            pipe = client.pipeline(transaction=False)
            pipe.execute_command("GET", "k")
            with pytest.raises(ClusterUnavailable) as executed:
                await pipe.execute()
            assert entered.value.operation == executed.value.operation == "PIPELINE"
        finally:
            await client.aclose()

    asyncio.run(body())


def test_the_relay_answers_an_unreachable_cluster_503_not_500(dead_cluster_url: str) -> None:
    stores = memory_stores()
    world, client = make_world(stores)
    world.signup("acme", "alice")
    alice = world.login("acme", "alice", "a1", admin=True)
    stores.queues = RedisQueueStore(RedisNamespace(dead_cluster_url, "errors"))

    refused = client.get("/v1/messages", headers=alice.headers)
    assert refused.status_code == 503, refused.text
    assert refused.json()["error"] == "storage_unavailable"
    assert refused.headers["Retry-After"] == "1" and refused.status_code in RETRY_STATUSES


# -- one server and Sentinel: the same translation (RedisUnavailable) -------------------------


@pytest.fixture
def dead_port() -> Iterator[int]:
    """A loopback port bound but not listening: every connection is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


def _url(scheme: str, port: int) -> str:
    return (f"redis://127.0.0.1:{port}/0" if scheme == "redis"
            else f"redis+sentinel://127.0.0.1:{port}/semafore")


@pytest.mark.parametrize("scheme", ["redis", "redis+sentinel"])
def test_a_single_server_that_cannot_be_reached_is_unavailable(scheme: str, dead_port: int) -> None:
    async def body() -> None:
        client = open_redis(_url(scheme, dead_port), retry=Retry(NoBackoff(), 0),
                            socket_timeout=1.0)
        try:
            with pytest.raises(RedisUnavailable) as command:
                await client.get("k")
            pipe = client.pipeline(transaction=False)
            pipe.get("k")
            with pytest.raises(RedisUnavailable) as pipeline:
                await pipe.execute()
        finally:
            await client.aclose()
        assert (command.value.operation, pipeline.value.operation) == ("GET", "PIPELINE")
        assert isinstance(command.value, StorageUnavailable)
        assert isinstance(command.value, RedisConnectionError)  # what callers caught before
        assert not isinstance(command.value, ClusterUnavailable)
        assert str(command.value).startswith("GET: Redis unavailable (")

    asyncio.run(body())


def test_a_single_server_keeps_wrong_credentials_and_our_errors_as_they_are() -> None:
    for error in (AuthenticationError("bad password"), ResponseError("WRONGTYPE"),
                  AttributeError("ours")):
        with pytest.raises(type(error)) as raised:
            asyncio.run(translated("GET", _raising(error), RedisUnavailable))
        assert not isinstance(raised.value, StorageUnavailable)


def test_the_relay_answers_an_unreachable_redis_503_not_500(dead_port: int) -> None:
    stores = memory_stores()
    world, client = make_world(stores)
    world.signup("acme", "alice")
    alice = world.login("acme", "alice", "a1", admin=True)
    stores.queues = RedisQueueStore(RedisNamespace(_url("redis", dead_port), "errors"))

    refused = client.get("/v1/messages", headers=alice.headers)
    assert refused.status_code == 503, refused.text
    assert refused.json()["error"] == "storage_unavailable"
    assert refused.headers["Retry-After"] == "1"
