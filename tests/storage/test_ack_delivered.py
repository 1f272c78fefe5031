"""Conformance: ``QueueStore.ack_delivered`` removes the acked envelopes of one device's queue
and records a delivery proof of each removed one (seed §2.2), with the outcome of ``ack``
followed by ``record_deliveries`` (issue #16 item 4: the relay's ack in one store call, on one
Redis server one script). Every adapter: the embedded ones and the Redis Cluster run the port's
two-call default, ``local`` the fused script.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from semafore.storage.ports import DeliveryProof, Stores, delivery_proof
from tests.storage.test_conformance import CANARY, envelope, found

pytestmark = pytest.mark.anyio

AT = 500.0


async def proofs(stores: Stores, org: str = "o1") -> dict[str, DeliveryProof]:
    return {p.delivery_id: p for p in await stores.queues.list_deliveries(org, None, 100)}


async def test_the_acked_envelopes_are_removed_returned_and_proven(stores: Stores) -> None:
    q = stores.queues
    queued = [envelope("e1", body=CANARY), envelope("e2"), envelope("e3")]
    await q.enqueue(queued)
    acked = await q.ack_delivered("bob", "d1", "o1", ["e3", "e1", "e3"], AT)
    assert acked == [queued[2], queued[0]]
    assert [e.delivery_id for e in await q.fetch("bob", "d1", 10)] == ["e2"]
    assert await proofs(stores) == {
        "e1": delivery_proof(queued[0], AT), "e3": delivery_proof(queued[2], AT)}
    await stores.compact()
    assert found(await stores.dump(), CANARY) == []  # a proof holds no body


async def test_a_repeated_ack_removes_nothing_and_keeps_the_first_proof(stores: Stores) -> None:
    q = stores.queues
    await q.enqueue([envelope("e1")])
    assert [e.delivery_id for e in await q.ack_delivered("bob", "d1", "o1", ["e1"], AT)] == [
        "e1"]
    assert await q.ack_delivered("bob", "d1", "o1", ["e1"], AT + 10.0) == []
    assert (await proofs(stores))["e1"].delivered_at == AT


async def test_only_this_devices_queue_is_touched(stores: Stores) -> None:
    q = stores.queues
    others = [envelope("e1", device="d2"), envelope("e2", user="carol")]
    await q.enqueue(others)
    assert await q.ack_delivered("bob", "d1", "o1", ["e1", "e2", "unknown"], AT) == []
    assert await q.count("bob", "d2") == 1 and await q.count("carol", "d1") == 1
    assert await proofs(stores) == {}


async def test_an_envelope_already_proven_is_removed_and_its_proof_kept(stores: Stores) -> None:
    q = stores.queues
    queued = envelope("e1")
    await q.enqueue([queued])
    earlier = delivery_proof(queued, 1.0)
    await q.record_delivery(earlier)
    assert await q.ack_delivered("bob", "d1", "o1", ["e1"], AT) == [queued]
    assert await q.count("bob", "d1") == 0
    assert await proofs(stores) == {"e1": earlier}


async def test_envelopes_of_another_org_in_the_queue_are_acked_and_proven_in_their_org(
    stores: Stores,
) -> None:
    q = stores.queues
    queued = [envelope("e1"), envelope("x1", org="o2"), envelope("e2")]
    await q.enqueue(queued)
    acked = await q.ack_delivered("bob", "d1", "o1", ["x1", "e2", "e1"], AT)
    assert acked == [queued[1], queued[2], queued[0]]
    assert await q.count("bob", "d1") == 0
    assert set(await proofs(stores)) == {"e1", "e2"}
    assert await proofs(stores, "o2") == {"x1": delivery_proof(queued[1], AT)}
    assert await q.expire("o2", before=AT) == 0  # nothing of o2 left behind to expire


async def test_a_proof_is_the_envelopes_ids_and_hash_with_the_delivery_time(
    stores: Stores,
) -> None:
    q = stores.queues
    queued = replace(envelope("e1", at=123.25), sender_user_id="alice", envelope_hash=b"\x07" * 32)
    await q.enqueue([queued])
    await q.ack_delivered("bob", "d1", "o1", ["e1"], 777.5)
    assert (await proofs(stores))["e1"] == DeliveryProof(
        delivery_id="e1", org_id="o1", message_id="m-e1", envelope_hash=b"\x07" * 32,
        sender_user_id="alice", sender_device_id="a1", recipient_user_id="bob",
        recipient_device_id="d1", received_at=123.25, delivered_at=777.5)
