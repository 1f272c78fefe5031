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
