"""Conformance: ``QueueStore.record_deliveries`` records one ack's delivery proofs in one
call (Redis: one pipeline) with ``record_delivery``'s rule: a delivery id keeps its first
proof, a repeat is not counted. Every adapter."""

from __future__ import annotations

from dataclasses import replace

import pytest

from semafore.storage.ports import DeliveryProof, Stores

pytestmark = pytest.mark.anyio


def proof(delivery_id: str, delivered_at: float = 200.0) -> DeliveryProof:
    return DeliveryProof(
        delivery_id=delivery_id, org_id="o1", message_id=f"m-{delivery_id}",
        envelope_hash=bytes(32), sender_user_id="alice", sender_device_id="a1",
        recipient_user_id="bob", recipient_device_id="b1", received_at=100.0,
        delivered_at=delivered_at,
    )


async def test_one_acks_proofs_are_recorded_together_first_proof_kept(stores: Stores) -> None:
    queues = stores.queues
    assert await queues.record_deliveries([]) == 0
    await queues.record_delivery(proof("d1"))
    batch = [proof("d0", 300.0), replace(proof("d1"), delivered_at=999.0), proof("d2", 300.0)]
    assert await queues.record_deliveries(batch) == 2  # d1 had its proof already
    recorded = {p.delivery_id: p for p in await queues.list_deliveries("o1", None, 10)}
    assert recorded == {"d0": proof("d0", 300.0), "d1": proof("d1"), "d2": proof("d2", 300.0)}
    assert await queues.record_deliveries([proof("d2", 400.0)]) == 0
