"""Auto-pipelining of the Redis adapters (``semafore.storage.redis_pipeline``), on a real
redis-server: what concurrent requests issue in one event-loop tick leaves as one pipeline,
each caller still gets exactly its own replies, in submission order, and a server that lost
its scripts costs a reload, never a command run twice."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.exceptions import ResponseError

from semafore.deploy.settings import ProviderKind
from semafore.deploy.testing import shared_provider
from semafore.storage.redis import RedisNamespace, RedisRateLimitStore
from semafore.storage.redis_pipeline import AutoPipeline

pytestmark = [pytest.mark.anyio, pytest.mark.backend]

NOW = 1_800_000_000.0


@pytest.fixture
async def ns() -> AsyncIterator[RedisNamespace]:
    url = shared_provider(ProviderKind.LOCAL).endpoints.redis_url
    assert url is not None
    namespace = RedisNamespace(url, f"ap{uuid.uuid4().hex[:12]}")
    try:
        yield namespace
    finally:
        await namespace.drop()
        await namespace.close()


def pipeline_of(ns: RedisNamespace) -> AutoPipeline:
    assert ns.pipeline is not None, "one server: the adapters auto-pipeline"
    return ns.pipeline


async def test_concurrent_hits_share_one_pipeline_and_count_in_submission_order(
    ns: RedisNamespace,
) -> None:
    rates = RedisRateLimitStore(ns)
    await rates.hit("warm", 1, 60.0, NOW)  # first use loads the script
    pipeline = pipeline_of(ns)
    before = dict(pipeline.stats)
    decisions = await asyncio.gather(*(rates.hit("k", 10, 60.0, NOW) for _ in range(25)))
    assert [d.allowed for d in decisions] == [True] * 10 + [False] * 15
    assert pipeline.stats["pipelines"] - before["pipelines"] == 1
    assert pipeline.stats["units"] - before["units"] == 25


async def test_a_failing_command_fails_only_its_own_caller(ns: RedisNamespace) -> None:
    text, counter = ns.key("text"), ns.key("counter")
    await ns.commands(("SET", text, "not a number"))
    replies: list[list[object] | BaseException] = await asyncio.gather(
        ns.commands(("INCR", text)),
        ns.commands(("INCR", counter)),
        ns.commands(("INCR", counter), ("GET", text)),
        return_exceptions=True,
    )
    bad, good, pair = replies
    assert isinstance(bad, ResponseError)
    assert good == [1]
    assert pair == [2, b"not a number"]


async def test_scripts_lost_by_the_server_are_reloaded_and_run_once(
    ns: RedisNamespace,
) -> None:
    rates = RedisRateLimitStore(ns)
    await rates.hit("warm", 1, 60.0, NOW)
    await ns.client.script_flush()  # as after a Redis restart without persistence
    first, second = await asyncio.gather(
        rates.hit("once", 5, 60.0, NOW), rates.hit("once", 5, 60.0, NOW)
    )
    assert first.allowed and second.allowed
    [count] = await ns.commands(("GET", ns.rate("once", int(NOW // 60.0))))
    assert count == b"2"  # each NOSCRIPT'd hit ran exactly once after the reload


async def test_a_connection_lost_under_a_written_pipeline_is_sent_again(
    ns: RedisNamespace,
) -> None:
    """When the connection dies under a written pipeline, before its replies: a new
    connection, the commands sent again (the client's retry policy), each caller its own
    replies. As for any pipeline the client retries,
    a command may have run before the connection died (here the ``INCR``: 1 or 2); the
    adapters' scripts re-check their preconditions, so a send is never queued twice."""
    pipeline = pipeline_of(ns)
    assert pipeline.wire is not None
    await ns.commands(("PING",))  # connected
    protocol = pipeline.wire._protocol
    assert protocol is not None
    slow = ("local function us() local t = redis.call('TIME'); return t[1] * 1e6 + t[2] end "
            "local start = us(); repeat until us() - start >= 5e4; return ARGV[1]")
    call = asyncio.create_task(ns.commands(("EVAL", slow, 0, "ran"), ("INCR", ns.key("n"))))
    for _ in range(20):  # a few loop turns: the unit is queued, then flushed and written
        if protocol.batches:
            break
        await asyncio.sleep(0)
    assert protocol.batches, "written, its replies awaited"
    assert protocol.transport is not None
    protocol.transport.abort()  # the connection dies before the script's 50 ms are up
    assert await call in ([b"ran", 1], [b"ran", 2])
    assert pipeline.wire.connections == 2
    assert pipeline.wire._protocol is not protocol


async def test_a_reply_that_cannot_be_read_fails_its_caller_not_the_connection(
    ns: RedisNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error turning a reply into its value (a reply callback) reaches that caller only;
    the connection reads on and serves the next call."""
    pipeline = pipeline_of(ns)
    assert pipeline.wire is not None
    await ns.commands(("PING",))

    def unreadable(reply: object) -> object:
        raise ValueError("cannot read this reply")

    monkeypatch.setitem(ns.client.response_callbacks, "GET", unreadable)
    with pytest.raises(ValueError, match="cannot read"):
        await ns.commands(("GET", ns.key("k")))
    monkeypatch.undo()
    assert await ns.commands(("SET", ns.key("k"), "v"), ("GET", ns.key("k"))) == [True, b"v"]
    assert pipeline.wire.connections == 1
