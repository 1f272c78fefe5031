"""Cross-replica push through real relay processes on shared real backends (issue 4): a device
with an open WebSocket on replica 2 gets, by push, what was sent through replica 1; presence in
Redis names the replica holding it; a replica killed mid-delivery loses no acknowledged
envelope (docs/backends.md "Cross-replica push")."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from semafore.client import DeviceClient
from semafore.deploy.providers import Provider
from semafore.deploy.settings import ProviderKind
from semafore.deploy.stores import backend_stores
from semafore.deploy.testing import shared_provider
from tests.backends.test_replicas import cluster

pytestmark = pytest.mark.backend


@pytest.fixture
def local() -> Provider:
    return shared_provider(ProviderKind.LOCAL)


async def pushed(device: DeviceClient, count: int, timeout: float = 20.0) -> list[bytes]:
    """Wait until ``count`` messages arrived over the device's socket (no HTTP fetch)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while len(device.inbox) < count and loop.time() < deadline:
        await asyncio.sleep(0.02)
    return [r.content.body for r in device.inbox]


async def where(provider: Provider, namespace: str, user: str, device: str) -> str | None:
    _, handles = await backend_stores(provider.endpoints, namespace)
    try:
        return await handles.presence.where(user, device)
    finally:
        await handles.close()


def test_device_on_replica_2_receives_by_push_what_was_sent_via_replica_1(
    local: Provider, tmp_path: Path
) -> None:
    namespace = f"x{uuid.uuid4().hex[:10]}"

    async def body() -> None:
        async with cluster(local, tmp_path, namespace) as c:
            alice = await c.device("alice", 0)
            bob = await c.device("bob", 1)
            bob.connect()
            await bob.wait_connected()
            assert bob.inbox == []
            sent = [f"pushed-{i}".encode() for i in range(5)]
            for text in sent:
                await alice.send_text("bob", text)  # through replica 1 (index 0)
            # bob never polls: only his socket on replica 2 can bring these
            assert await pushed(bob, len(sent)) == sent
            assert bob.counters.reconnects == 0  # no reconnect backlog replay either

    asyncio.run(body())


def test_presence_shows_which_replica_holds_the_device(local: Provider, tmp_path: Path) -> None:
    namespace = f"x{uuid.uuid4().hex[:10]}"

    async def body() -> None:
        async with cluster(local, tmp_path, namespace) as c:
            bob = await c.device("bob", 1)
            alice = await c.device("alice", 0)
            assert await where(local, namespace, "bob", "phone") is None
            bob.connect()
            alice.connect()
            await bob.wait_connected()
            await alice.wait_connected()
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 10
            while loop.time() < deadline and (
                await where(local, namespace, "bob", "phone") is None
                or await where(local, namespace, "alice", "phone") is None
            ):
                await asyncio.sleep(0.05)
            assert await where(local, namespace, "bob", "phone") == "replica-1"
            assert await where(local, namespace, "alice", "phone") == "replica-0"
            await bob.close()
            deadline = loop.time() + 10
            while loop.time() < deadline and await where(local, namespace, "bob", "phone"):
                await asyncio.sleep(0.05)
            assert await where(local, namespace, "bob", "phone") is None

    asyncio.run(body())


def test_replica_killed_mid_push_delivery_loses_no_acknowledged_envelope(
    local: Provider, tmp_path: Path
) -> None:
    namespace = f"x{uuid.uuid4().hex[:10]}"

    async def body() -> None:
        async with cluster(local, tmp_path, namespace) as c:
            alice = await c.device("alice", 0)
            bob = await c.device("bob", 1)
            bob.connect()
            await bob.wait_connected()
            bob_replica = c.replicas.replicas[1]
            killed = asyncio.Event()

            def kill_on_first(_client: DeviceClient, _received: object) -> None:
                if not killed.is_set():
                    killed.set()
                    bob_replica.kill()  # kill -9 while pushes are in flight, before acks

            bob.on_receive = kill_on_first
            sent = [f"mid-{i}".encode() for i in range(20)]
            for text in sent:
                await alice.send_text("bob", text)  # each returned = acknowledged by replica 1
            await asyncio.wait_for(killed.wait(), 20)
            await asyncio.to_thread(bob_replica.start)
            got = await pushed(bob, len(sent), timeout=60)  # reconnect replays the queue
            assert sorted(got) == sorted(sent)  # every acknowledged envelope, exactly once
            assert len(set(got)) == len(got)
            assert bob.counters.reconnects >= 1

    asyncio.run(body())
