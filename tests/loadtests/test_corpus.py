"""Provisioning (loadtests/corpus.py): every planned device really registered on the relay.

The provisioning path is concurrent (members enrolled and devices installed ``CONCURRENCY``
at a time over one shared pool of connections) so that a 1,875-device population finishes
on a slow backend; these tests pin that it still puts *every* planned member and device on
the relay under test with real keys (SPEC §1), judged from the relay's own stores, and that
a provisioning that silently drops a device fails with ``CorpusError`` naming ``devices``
instead of producing a corpus that over-reports its population.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from loadtests import corpus as corpus_module
from loadtests.corpus import CorpusBuilder, CorpusError, Person, build_corpus, plan_people
from loadtests.profile import Profile, load_profile
from semafore.client import DeviceClient
from semafore.deploy.inprocess import serve_in_thread
from semafore.protocol.keys import device_address
from semafore.server.settings import Settings, unlimited_rate_limits
from semafore.storage.memory import memory_stores
from semafore.storage.ports import Stores

ORG = "load-corpus-test"
SEED = "corpus-test"


@dataclasses.dataclass
class Relay:
    url: str
    stores: Stores


@pytest.fixture
def relay() -> Iterator[Relay]:
    settings = Settings(test_mode=True, test_orgs=frozenset({ORG}),
                        rate_limits=unlimited_rate_limits(), retention_interval=0,
                        max_broadcast_recipients=1000)
    stores = memory_stores()
    with serve_in_thread(settings, stores) as server:
        yield Relay(server.url, stores)


def small_broadcast() -> Profile:
    """broadcast_burst shrunk: 40 people (every one a broadcast recipient), 6 online."""
    profile = load_profile("broadcast_burst").with_overrides(users=6)
    return dataclasses.replace(
        profile, people=40, broadcast=dataclasses.replace(profile.broadcast, recipients=40))


def small_chat() -> Profile:
    """office_hours shrunk: few online devices, so most users' bundles are never fetched
    and the census has to ask the relay about them itself."""
    return dataclasses.replace(load_profile("office_hours").with_overrides(users=4), people=25)


async def on_relay(stores: Stores, people: list[Person]) -> dict[str, str]:
    """What the relay's own stores hold for each planned device ('' when complete)."""
    members = {m.user_id for m in await stores.accounts.list_members(ORG)}
    state = {}
    for person in people:
        for device_id in person.device_ids:
            address = device_address(person.user_id, device_id)
            if person.user_id not in members:
                state[address] = "not a member"
            elif await stores.accounts.get_device(person.user_id, device_id) is None:
                state[address] = "no device"
            elif await stores.keys.get_identity(person.user_id, device_id) is None:
                state[address] = "no identity"
            elif await stores.keys.get_spk(person.user_id, device_id) is None:
                state[address] = "no signed prekey"
            else:
                state[address] = ""
    return state


@pytest.mark.parametrize("make_profile", [small_broadcast, small_chat],
                         ids=["broadcast", "chat"])
def test_every_planned_member_and_device_is_registered_with_keys(
    make_profile: Callable[[], Profile], relay: Relay, tmp_path: Path
) -> None:
    profile = make_profile()
    path = asyncio.run(build_corpus(profile, relay.url, ORG, tmp_path, seed=SEED))
    people = plan_people(profile, random.Random(SEED))  # the builder's plan, same seed
    doc = json.loads(path.read_text(encoding="utf-8"))
    planned = sum(len(p.device_ids) for p in people)
    assert doc["people"] == len(people)
    assert doc["total_devices"] == planned
    state = asyncio.run(on_relay(relay.stores, people))
    assert len(state) == planned
    assert {a: s for a, s in state.items() if s} == {}
    # each planned device also published its one-time prekeys (bundle fetches claim a few)
    first = people[-1]
    count = asyncio.run(relay.stores.keys.opk_count(first.user_id, first.device_ids[-1]))
    assert 0 < count <= profile.prekeys.initial


@pytest.mark.parametrize("how", ["skipped", "no keys"])
def test_a_device_silently_dropped_by_provisioning_fails_the_build(
    how: str, relay: Relay, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A defect that loses one device without an error (its install never ran, or it logged
    in but its keys never reached the relay) must not yield a corpus."""
    profile = small_chat()
    people = plan_people(profile, random.Random(SEED))
    dropped = (people[-1].user_id, people[-1].device_ids[-1])  # a device nobody fetches
    install = CorpusBuilder._install
    publish = DeviceClient.publish_keys

    async def lossy(self: CorpusBuilder, person: Person, device_id: str) -> None:
        if how == "skipped" and (person.user_id, device_id) == dropped:
            return
        await install(self, person, device_id)

    async def keys_lost(self: DeviceClient) -> int:
        if (self.user_id, self.device_id) == dropped:
            return profile.prekeys.initial  # claims success, uploads nothing
        return await publish(self)

    monkeypatch.setattr(CorpusBuilder, "_install", lossy)
    monkeypatch.setattr(DeviceClient, "publish_keys", keys_lost)
    with pytest.raises(CorpusError) as failed:
        asyncio.run(build_corpus(profile, relay.url, ORG, tmp_path, seed=SEED))
    assert failed.value.field == "devices"
    assert device_address(*dropped) in str(failed.value)
    assert not (tmp_path / "corpus.json").exists()


def test_every_provisioning_request_goes_over_the_one_shared_pool(
    relay: Relay, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Enrolments, logins and key uploads of every device use the builder's one pool of
    kept-alive connections, never a pool (and a TCP connection) per device."""
    pools: set[int] = set()
    paths: list[str] = []
    handle = corpus_module.SharedPool.handle_async_request

    async def counted(self: corpus_module.SharedPool, request: httpx.Request) -> httpx.Response:
        pools.add(id(self))
        paths.append(f"{request.method} {request.url.path}")
        return await handle(self, request)

    monkeypatch.setattr(corpus_module.SharedPool, "handle_async_request", counted)
    profile = small_chat()
    asyncio.run(build_corpus(profile, relay.url, ORG, tmp_path, seed=SEED))
    people = plan_people(profile, random.Random(SEED))
    devices = sum(len(p.device_ids) for p in people)
    assert len(pools) == 1
    assert paths.count("POST /v1/auth/login") == devices + 1  # and the admin's console
    assert paths.count("PUT /v1/keys") == devices + 1
    assert sum(p.startswith(f"PUT /v1/orgs/{ORG}/members/") for p in paths) == len(people)
