"""Behaviour of the real-backend adapters beyond the conformance suite: concurrency from
several clients (as from several server replicas), cross-replica push, presence, start-up
indexes, and the raw-store dump seeing what the adapters wrote."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from semafore.deploy import dumps
from semafore.deploy.settings import ProviderKind
from semafore.deploy.stores import BackendHandles, backend_stores
from semafore.deploy.testing import shared_provider
from semafore.storage.ports import (
    AuditEvent,
    AuditQuery,
    OneTimePrekeyRecord,
    QueuedEnvelope,
    Stores,
)

pytestmark = [pytest.mark.backend, pytest.mark.anyio]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


Replica = tuple[Stores, BackendHandles]


@pytest.fixture
async def replicas() -> AsyncIterator[list[Replica]]:
    """Two independent client sets on one namespace: what two server replicas would hold."""
    endpoints = shared_provider(ProviderKind.LOCAL).endpoints
    namespace = f"r{uuid.uuid4().hex[:12]}"
    opened = [await backend_stores(endpoints, namespace) for _ in range(2)]
    yield opened
    await opened[0][1].drop()
    for _, handles in opened:
        await handles.close()


def envelope(delivery_id: str, body: bytes = b"\x01ct") -> QueuedEnvelope:
    return QueuedEnvelope(
        delivery_id,
        "o1",
        f"m-{delivery_id}",
        "message",
        "alice",
        "a1",
        "bob",
        "d1",
        body,
        bytes(32),
        1.0,
    )


async def test_opk_claims_from_two_replicas_never_collide(replicas: list[Replica]) -> None:
    (one, _), (two, _) = replicas
    await one.keys.add_opks(
        "bob", "d1", [OneTimePrekeyRecord(f"k{i}", bytes([i]) * 32) for i in range(30)]
    )
    claims = await asyncio.gather(
        *(s.keys.claim_opk("bob", "d1") for s in (one, two) for _ in range(25))
    )
    got = [c.key_id for c in claims if c is not None]
    assert sorted(got) == sorted(f"k{i}" for i in range(30))


async def test_audit_sequence_is_unique_under_concurrent_appends(replicas: list[Replica]) -> None:
    (one, _), (two, _) = replicas
    events = await asyncio.gather(
        *(s.audit.append(AuditEvent("o1", "signup", 1.0)) for s in (one, two) for _ in range(15))
    )
    seqs = [e.seq for e in events]
    assert len(set(seqs)) == 30 and min(seqs) >= 1
    stored = await one.audit.query(AuditQuery("o1", limit=100))
    assert [e.seq for e in stored] == sorted(seqs)  # query order is the sequence order


async def test_ack_from_two_replicas_returns_each_envelope_once(replicas: list[Replica]) -> None:
    (one, _), (two, _) = replicas
    await one.queues.enqueue([envelope(f"e{i}") for i in range(10)])
    ids = [f"e{i}" for i in range(10)]
    acked = await asyncio.gather(one.queues.ack("bob", "d1", ids), two.queues.ack("bob", "d1", ids))
    assert sorted(e.delivery_id for batch in acked for e in batch) == sorted(ids)


async def test_push_reaches_the_replica_holding_the_connection(replicas: list[Replica]) -> None:
    (_, a), (sender, b) = replicas
    received: list[str] = []

    async def connected_on_replica_a() -> None:
        async for delivery_id in a.push.listen("bob", "d1"):
            received.append(delivery_id)
            return

    listener = asyncio.create_task(connected_on_replica_a())
    for _ in range(100):  # wait until the subscription is live
        if await b.push.notify("bob", "d1", "probe") > 0:
            break
        await asyncio.sleep(0.02)
    await listener
    assert received == ["probe"]
    await sender.queues.enqueue([envelope("pushed")])
    assert [e.delivery_id for e in await replicas[0][0].queues.fetch("bob", "d1", 10)] == ["pushed"]


async def test_presence_belongs_to_the_last_replica(replicas: list[Replica]) -> None:
    (_, a), (_, b) = replicas
    await a.presence.online("bob", "d1", "replica-a", ttl=30)
    await b.presence.online("bob", "d1", "replica-b", ttl=30)  # reconnected elsewhere
    assert await a.presence.offline("bob", "d1", "replica-a") is False
    assert await a.presence.where("bob", "d1") == "replica-b"
    assert await b.presence.offline("bob", "d1", "replica-b") is True
    assert await a.presence.where("bob", "d1") is None


async def test_raw_store_dumps_see_adapter_writes(replicas: list[Replica]) -> None:
    (stores, handles) = replicas[0]
    canary = b"RAW-CANARY-" + uuid.uuid4().hex.encode()
    await stores.queues.enqueue([envelope("c1", body=canary)])
    await stores.blobs.put("att-1", canary)
    await stores.keys.add_opks("bob", "d1", [OneTimePrekeyRecord("c", canary)])
    endpoints = shared_provider(ProviderKind.LOCAL).endpoints
    assert endpoints.redis_url and endpoints.mongodb_url and endpoints.seaweedfs_filer_url
    assert dumps.find(await asyncio.to_thread(dumps.dump_redis, endpoints.redis_url), canary)
    assert dumps.find(await asyncio.to_thread(dumps.dump_mongodb, endpoints.mongodb_url), canary)
    assert dumps.find(
        await asyncio.to_thread(dumps.dump_seaweedfs, endpoints.seaweedfs_filer_url), canary
    )
    assert handles.mongo.name in {
        i.source.split(":")[1].split(".")[0] for i in dumps.dump_mongodb(endpoints.mongodb_url)
    }


async def test_indexes_exist_after_start_up(replicas: list[Replica]) -> None:
    db = replicas[0][1].mongo.db
    opk_indexes = await db.opks.index_information()
    assert any(info.get("unique") for info in opk_indexes.values())
    audit_indexes = await db.audit.index_information()
    assert any(info.get("unique") for info in audit_indexes.values())
