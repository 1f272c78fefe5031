"""Reference-server replicas as processes on shared real backends: clients spread across
replicas, replicas and Redis killed mid-conversation, and no acknowledged envelope lost."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from semafore.client import (
    Account,
    DeviceClient,
    Received,
    SystemClock,
    create_organisation,
    enrol_members,
)
from semafore.client.account import fixed_otp
from semafore.deploy.providers import Endpoints, LocalProvider, Provider
from semafore.deploy.replicas import ReplicaSet
from semafore.deploy.settings import InfraSettings, ProviderKind
from semafore.deploy.testing import require, shared_provider
from semafore.protocol.entropy import SeededEntropy

pytestmark = pytest.mark.backend

ORG = "acme"


@dataclass
class Cluster:
    replicas: ReplicaSet
    accounts: list[Account]
    entropy: SeededEntropy
    clock: SystemClock  # replicas run on the wall clock

    async def device(self, user: str, replica: int, device_id: str = "phone") -> DeviceClient:
        account = Account(
            ORG, user, self.replicas.urls[replica], self.entropy.fork, self.clock, fixed_otp()
        )
        self.accounts.append(account)
        return await account.add_device(device_id, connect=False)


@asynccontextmanager
async def cluster(
    provider: Provider | _ProxiedProvider, tmp_path: Path, namespace: str
) -> AsyncIterator[Cluster]:
    with ReplicaSet(
        provider.endpoints, 2, tmp_path, namespace=namespace, test_orgs=(ORG,), unlimited_rates=True
    ) as replicas:
        c = Cluster(replicas, [], SeededEntropy(namespace), SystemClock())
        org = await create_organisation(
            replicas.urls[0], ORG, "Acme", "admin", c.entropy.fork("org")
        )
        admin = Account(
            ORG,
            "admin",
            replicas.urls[1],
            c.entropy.fork,
            c.clock,
            fixed_otp(),
            totp_secret=str(org["totp_secret"]),
        )
        c.accounts.append(admin)
        console = await admin.add_device("console", connect=False)
        await enrol_members(console, ORG, ["alice", "bob"], seats=5)
        try:
            yield c
        finally:
            for account in c.accounts:
                await account.close()


def bodies(received: list[Received]) -> list[bytes]:
    return [r.content.body for r in received]


@pytest.fixture
def local() -> Provider:
    return shared_provider(ProviderKind.LOCAL)


def test_message_sent_via_replica_1_reaches_device_on_replica_2(
    local: Provider, tmp_path: Path
) -> None:
    async def body() -> None:
        async with cluster(local, tmp_path, "rep1") as c:
            alice = await c.device("alice", 0)
            bob = await c.device("bob", 1)
            await alice.send_text("bob", b"across replicas")
            assert bodies(await bob.poll()) == [b"across replicas"]
            await bob.send_text("alice", b"and back")
            assert bodies(await alice.poll()) == [b"and back"]

    asyncio.run(body())


def test_replica_killed_after_acknowledging_loses_nothing(local: Provider, tmp_path: Path) -> None:
    async def body() -> None:
        async with cluster(local, tmp_path, "rep2") as c:
            alice = await c.device("alice", 0)
            bob = await c.device("bob", 1)
            sent = [f"msg-{i}".encode() for i in range(5)]
            for text in sent:
                await alice.send_text("bob", text)  # returned = acknowledged by replica 0
            c.replicas.replicas[0].kill()
            c.replicas.replicas[1].kill()  # bob's replica dies too, before he fetched
            c.replicas.replicas[1].start()
            got = bodies(await bob.poll())
            got += bodies(await bob.poll())
            assert got == sent  # every acknowledged envelope, exactly once, in order

    asyncio.run(body())


@pytest.fixture
def durable(tmp_path: Path) -> Iterator[LocalProvider]:
    base = InfraSettings.from_env({})
    settings = InfraSettings(
        **{**base.__dict__, "provider": ProviderKind.LOCAL, "work_dir": tmp_path / "backends"}
    )
    provider = LocalProvider(settings, redis_durable=True)

    def start() -> LocalProvider:
        provider.start()
        return provider

    require(start)
    yield provider
    provider.stop()


def test_redis_and_replica_killed_at_random_points(durable: LocalProvider, tmp_path: Path) -> None:
    rng = random.Random(20261125)
    kill_at = sorted(rng.sample(range(1, 12), 2))

    async def body() -> None:
        async with cluster(durable, tmp_path, "dur") as c:
            alice = await c.device("alice", 0)
            bob = await c.device("bob", 1)
            acknowledged: list[bytes] = []
            for i in range(12):
                if i in kill_at:
                    durable.backend("redis").kill()
                    c.replicas.replicas[0].kill()
                    durable.backend("redis").start()
                    c.replicas.replicas[0].start()
                text = f"conv-{i}".encode()
                await alice.send_text("bob", text)
                acknowledged.append(text)
            received: list[bytes] = []
            for _ in range(3):
                received += bodies(await bob.poll())
            assert received == acknowledged  # none lost, none duplicated
            assert len(set(received)) == len(received)

    asyncio.run(body())


def test_relay_rides_out_a_cut_and_a_slow_link_to_redis(local: Provider, tmp_path: Path) -> None:
    from semafore.deploy.faultproxy import BackendLinks

    async def body() -> None:
        with BackendLinks(local.endpoints) as links:
            proxied = _ProxiedProvider(local, links.endpoints)
            async with cluster(proxied, tmp_path, "links") as c:
                alice = await c.device("alice", 0)
                bob = await c.device("bob", 1)
                await alice.send_text("bob", b"before")
                assert links["redis"].cut() >= 1  # every relay->Redis connection reset
                links["redis"].set_latency(0.05)
                await alice.send_text("bob", b"after the cut")
                links.heal()
                assert bodies(await bob.poll()) == [b"before", b"after the cut"]
                assert links["redis"].stats.cut >= 1 and links["mongodb"].stats.bytes_up > 0

    asyncio.run(body())


class _ProxiedProvider:
    """Just enough of a Provider for ``cluster``: the endpoints through the fault proxies."""

    def __init__(self, real: Provider, endpoints: Endpoints) -> None:
        self.real = real
        self.endpoints = endpoints


def test_replica_killed_between_delivery_and_ack_redelivers_once(
    local: Provider, tmp_path: Path
) -> None:
    async def body() -> None:
        async with cluster(local, tmp_path, "midack") as c:
            alice = await c.device("alice", 0)
            bob = await c.device("bob", 1)
            sent = [f"unacked-{i}".encode() for i in range(4)]
            for text in sent:
                await alice.send_text("bob", text)
            ack = bob.flush_acks

            async def replica_dies_before_the_ack() -> None:
                c.replicas.replicas[1].kill()

            bob.flush_acks = replica_dies_before_the_ack  # type: ignore[method-assign]
            first = bodies(await bob.poll())
            bob.flush_acks = ack  # type: ignore[method-assign]
            c.replicas.replicas[1].start()
            second = bodies(await bob.poll())  # the relay redelivers: nothing was acked
            assert first == sent and second == []
            assert bob.counters.duplicates == len(sent)  # dropped by message id
            assert await bob.poll() == []  # and now they are acked

    asyncio.run(body())
