"""The one specification of ``WAIT N`` on the send (docs/backends.md "`WAIT N` on the send"),
run against each Redis topology that has replicas: the Sentinel group's replica and the
replica of a Redis Cluster slot's node (issue #16 item 5)."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from semafore.deploy.processes import ManagedProcess
from semafore.storage.redis import RedisNamespace, RedisQueueStore, ReplicaWait, ReplicaWaitError
from tests.storage.test_conformance import envelope, send_record


async def acknowledged_only_once_a_replica_has_it(
    url: str, replica_of: Callable[[RedisNamespace], ManagedProcess],
) -> None:
    """Replica up: acknowledged. Stalled: the same kind of send is refused with 0 confirmed,
    and so is its replay, while a store without ``wait`` still acknowledges — so it is the
    WAIT that refuses. Replica back: the retry under the same key replays the recorded send,
    acknowledged now that the replica has it. ``replica_of`` names the replica that must
    confirm bob's queue writes."""
    ns = RedisNamespace(url, f"w{uuid.uuid4().hex[:10]}")
    waiting = RedisQueueStore(ns, wait=ReplicaWait(1, timeout=0.3))
    patient = RedisQueueStore(ns, wait=ReplicaWait(1, timeout=10.0))  # a loaded machine
    plain = RedisQueueStore(ns)
    replica = replica_of(ns)
    try:
        assert await patient.enqueue_send(send_record("e1"), [envelope("e1")]) is None
        replica.pause()
        try:
            with pytest.raises(ReplicaWaitError) as refused:
                await waiting.enqueue_send(send_record("e2", message_id="m2"),
                                           [envelope("e2")])
            assert (refused.value.wanted, refused.value.confirmed) == (1, 0)
            with pytest.raises(ReplicaWaitError):  # a replay waits too
                await waiting.enqueue_send(send_record("r2", message_id="m2"),
                                           [envelope("r2")])
            assert await plain.enqueue_send(send_record("e3", message_id="m3"),
                                            [envelope("e3")]) is None
        finally:
            replica.resume()
        recorded = await patient.enqueue_send(send_record("r3", message_id="m2"),
                                              [envelope("r3")])
        assert recorded == send_record("e2", message_id="m2")
    finally:
        await ns.drop()
        await ns.close()
