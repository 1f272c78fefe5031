"""``WAIT N`` on the relay's send (``RedisQueueStore(ns, wait=ReplicaWait(...))``, docs/backends.md
"Cluster shape"): a send is acknowledged only once a replica has it. On the Sentinel topology
of the cluster shape, real redis-server processes (the Redis Cluster topology:
tests/deploy/test_redis_cluster_slot_wait.py): a stalled replica turns acknowledgements
into :class:`ReplicaWaitError` refusals, and the lagging-replica failover that loses
acknowledged sends without WAIT loses none with it."""

from __future__ import annotations

import asyncio
import base64
import os
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
from hypothesis import given
from hypothesis import strategies as st

from semafore.client.transport import RETRY_STATUSES
from semafore.deploy.cluster import LocalClusterProvider
from semafore.deploy.errors import SettingsError
from semafore.deploy.failover import measure_failover
from semafore.deploy.providers import Endpoints
from semafore.deploy.replicas import endpoints_from_env
from semafore.deploy.selection import provider_from_settings
from semafore.deploy.settings import InfraSettings, ProviderKind, Shape
from semafore.deploy.stores import backend_stores
from semafore.deploy.testing import require
from semafore.storage.memory import memory_stores
from semafore.storage.ports import NotDurable
from semafore.storage.redis import (
    RedisQueueStore,
    ReplicaWait,
    ReplicaWaitError,
)
from tests.deploy.wait_checks import acknowledged_only_once_a_replica_has_it
from tests.server.helpers import make_world, messaging_org
from tests.storage.test_conformance import envelope, send_record


@pytest.mark.parametrize(("replicas", "timeout", "field"),
                         [(0, 1.0, "replicas"), (-1, 1.0, "replicas"), (1, 0.0, "timeout"),
                          (1, 61.0, "timeout")])
def test_a_bad_replica_wait_names_the_field(replicas: int, timeout: float, field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field}:"):
        ReplicaWait(replicas, timeout)


@pytest.fixture
def sentinel(tmp_path: Path) -> Iterator[LocalClusterProvider]:
    base = InfraSettings.from_env({})
    settings = InfraSettings(**{**base.__dict__, "provider": ProviderKind.LOCAL,
                                "shape": Shape.CLUSTER, "work_dir": tmp_path})
    provider = provider_from_settings(settings)
    assert isinstance(provider, LocalClusterProvider)

    def start() -> LocalClusterProvider:
        provider.start()
        return provider

    require(start)
    yield provider
    provider.stop()


@pytest.mark.backend
def test_a_send_is_acknowledged_only_once_a_replica_has_it(
    sentinel: LocalClusterProvider,
) -> None:
    """Replica up: acknowledged. Replica stalled: the same kind of send is refused with the
    count of replicas that confirmed (0), while a store without ``wait`` still acknowledges —
    so it is the WAIT that refuses. Replica back: the retry under the same key replays the
    recorded send, acknowledged now that the replica has it."""
    url = sentinel.endpoints.redis_url
    replica = sentinel.group().replica
    assert url is not None and replica is not None

    asyncio.run(acknowledged_only_once_a_replica_has_it(url, lambda _: replica.process))


@pytest.mark.backend
def test_with_wait_the_lagging_replica_failover_loses_no_acknowledged_send(
    sentinel: LocalClusterProvider,
) -> None:
    """The run ``test_a_lagging_replica_loses_acknowledged_sends_and_the_harness_counts_them``
    shows losing acknowledged sends, with ``wait``: writes during the stall are refused (not
    acknowledged), so the promoted replica lacks no acknowledged send; every send is
    acknowledged in the end (the killed primary rejoins as the new primary's replica)."""
    figures = asyncio.run(measure_failover(
        sentinel, messages=1200, writers=8, kill_after=1000, pause_replica_at=400,
        body_size=32 * 1024, wait=ReplicaWait(1, timeout=0.05), deadline=120.0,
    ))
    assert figures.acknowledged == 1200
    assert figures.error_kinds.get("ReplicaWaitError", 0) > 0, "the stall never refused a send"
    assert figures.lost == ()
    assert figures.duplicated == ()


# --- SEMAFORE_REDIS_WAIT: the relay's setting, its child relays and its answer --------------


@pytest.mark.parametrize(("text", "wanted"), [("1", ReplicaWait(1)), ("2/0.5", ReplicaWait(2, 0.5)),
                                              (" 1/60 ", ReplicaWait(1, 60.0))])
def test_the_wait_setting_reads_replicas_and_timeout(text: str, wanted: ReplicaWait) -> None:
    settings = InfraSettings.from_env({"SEMAFORE_REDIS_WAIT": text})
    assert settings.redis_wait == wanted
    assert ReplicaWait.parse(wanted.as_text()) == wanted


@pytest.mark.parametrize(("text", "part"), [("x", "replicas"), ("-1", "replicas"),
                                            ("1/", "timeout"), ("1/soon", "timeout"),
                                            ("1/0", "timeout"), ("1/nan", "timeout"),
                                            ("1/inf", "timeout"), ("1/61", "timeout")])
def test_a_bad_wait_setting_names_the_variable_and_the_part(text: str, part: str) -> None:
    with pytest.raises(SettingsError) as refused:
        InfraSettings.from_env({"SEMAFORE_REDIS_WAIT": text})
    assert refused.value.field == "SEMAFORE_REDIS_WAIT" and part in str(refused.value)


def test_no_wait_is_the_default_and_zero_means_none() -> None:
    assert InfraSettings.from_env({}).redis_wait is None
    assert InfraSettings.from_env({"SEMAFORE_REDIS_WAIT": "0"}).redis_wait is None


@given(replicas=st.integers(1, 16), timeout=st.floats(0.001, 60.0))
def test_a_child_relay_reads_the_wait_its_parent_runs_with(replicas: int, timeout: float) -> None:
    """``Endpoints.as_env`` is what a replica process starts from (``endpoints_from_env``)."""
    wait = ReplicaWait(replicas, float(f"{timeout:g}"))
    parent = Endpoints(ProviderKind.LOCAL, "mongodb://127.0.0.1:1", "redis://127.0.0.1:2",
                       "http://127.0.0.1:3", redis_wait=wait)
    with patch.dict(os.environ, parent.as_env(), clear=True):
        assert endpoints_from_env().redis_wait == wait


def test_a_write_not_confirmed_durable_is_a_503_to_retry_not_an_acknowledgement() -> None:
    """The relay's answer to :class:`NotDurable` (what ``ReplicaWaitError`` is): 503 with
    ``Retry-After``, which the client's retry policy honours; the retry under the same message
    id is then answered. Memory stores with the queue port refusing once (the Redis side is
    the next test)."""
    stores = memory_stores()
    world, _ = make_world(stores)
    org = messaging_org(world)
    real = stores.queues.enqueue_send
    refusals = [ReplicaWaitError(1, 0, 0.3)]

    async def refusing(*args: Any, **kwargs: Any) -> Any:
        if refusals:
            raise refusals.pop()
        return await real(*args, **kwargs)

    stores.queues.enqueue_send = refusing  # type: ignore[method-assign]
    body = {"message_id": "m1", "envelopes": [
        {"device_id": s.device_id, "registration_id": s.registration_id,
         "body": base64.b64encode(b"DRV1" + bytes(80)).decode()} for s in (org["b1"], org["b2"])]}
    refused = world.client.put("/v1/messages/bob", json=body, headers=org["a1"].headers)
    assert refused.status_code == 503, refused.text
    assert refused.json()["error"] == "not_durable" and refused.headers["Retry-After"] == "1"
    assert refused.status_code in RETRY_STATUSES
    answered = world.client.put("/v1/messages/bob", json=body, headers=org["a1"].headers)
    assert answered.status_code == 200, answered.text


@pytest.mark.backend
def test_a_relay_started_with_the_wait_setting_refuses_while_the_replica_stalls(
    sentinel: LocalClusterProvider,
) -> None:
    """``SEMAFORE_REDIS_WAIT`` reaches the relay's queue port through the provider's
    endpoints (``backend_stores``): a send while the replica is stopped raises
    :class:`NotDurable`; on the same endpoints without the setting it is acknowledged."""
    replica = sentinel.group().replica
    assert replica is not None
    waiting = replace(sentinel.endpoints, redis_wait=ReplicaWait(1, timeout=0.3))

    async def body() -> None:
        namespace = f"w{uuid.uuid4().hex[:10]}"
        stores, handles = await backend_stores(waiting, namespace)
        plain, plain_handles = await backend_stores(
            replace(waiting, redis_wait=None), namespace)
        try:
            assert isinstance(stores.queues, RedisQueueStore) and stores.queues.wait is not None
            replica.process.pause()
            try:
                with pytest.raises(NotDurable):
                    await stores.queues.enqueue_send(send_record("e1"), [envelope("e1")])
                assert await plain.queues.enqueue_send(
                    send_record("e2", message_id="m2"), [envelope("e2")]) is None
            finally:
                replica.process.resume()
        finally:
            await handles.drop()
            await handles.close()
            await plain_handles.close()

    asyncio.run(body())
