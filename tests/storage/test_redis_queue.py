"""Redis queue store beyond the ports: reading envelopes by id for the cross-replica push hub
(``RedisQueueStore.get_envelopes``), on a real redis-server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from semafore.deploy.settings import ProviderKind
from semafore.deploy.testing import shared_provider
from semafore.storage.redis import RedisNamespace, RedisQueueStore
from tests.storage.test_conformance import envelope

pytestmark = [pytest.mark.anyio, pytest.mark.backend]


@pytest.fixture
async def queues() -> AsyncIterator[RedisQueueStore]:
    url = shared_provider(ProviderKind.LOCAL).endpoints.redis_url
    assert url is not None
    ns = RedisNamespace(url, f"rq{uuid.uuid4().hex[:12]}")
    try:
        yield RedisQueueStore(ns)
    finally:
        await ns.drop()
        await ns.close()


async def test_get_envelopes_returns_only_still_queued_ones_by_id(
    queues: RedisQueueStore,
) -> None:
    stored = [envelope("e1"), envelope("e2", device="d2"), envelope("e3", user="carol")]
    await queues.enqueue(stored)
    await queues.ack("bob", "d2", ["e2"])
    found = await queues.get_envelopes(
        [("carol", "e3"), ("bob", "e2"), ("bob", "gone"), ("bob", "e1"), ("carol", "e3")]
    )
    assert found == {"e3": stored[2], "e1": stored[0]}
    assert await queues.get_envelopes([]) == {}
