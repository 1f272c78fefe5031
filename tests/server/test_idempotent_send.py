"""Idempotent sends (issue #3 "Messages", docs/server.md "Messages"): the relay keeps a send
ledger per (org, sender user, sender device, message_id), so a client retrying a send whose
answer was lost gets the original answer (same delivery ids) and nothing is queued twice; a
different envelope set under a used message id is refused (409 ``message_id_reused``)."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from semafore.deploy.settings import ProviderKind
from semafore.deploy.stores import backend_stores
from semafore.deploy.testing import shared_provider
from semafore.server import models as m
from semafore.server.oplog import h8
from semafore.server.relay import SEND_LEDGER_MAX_AGE, Relay, entries_digest, send_digest
from semafore.server.settings import Settings
from semafore.server.tokens import Principal
from semafore.storage.memory import memory_stores
from semafore.storage.ports import (
    Device,
    IdentityRecord,
    Membership,
    Org,
    QueuedEnvelope,
    SignedPrekeyRecord,
    Stores,
    TotpEnrolment,
    User,
)
from semafore.storage.sqlite import sqlite_stores
from tests.server.helpers import DeviceSession, LogCapture, World, b64, messaging_org

BODY = b"DRV1" + bytes(range(68))


def env(session: DeviceSession, body: bytes = BODY) -> dict[str, Any]:
    return {
        "device_id": session.device_id,
        "registration_id": session.registration_id,
        "body": b64(body),
    }


def send(world: World, sender: DeviceSession, user: str, envs: list[dict[str, Any]],
         mid: str = "m1") -> Any:
    return world.client.put(
        f"/v1/messages/{user}", json={"message_id": mid, "envelopes": envs}, headers=sender.headers
    )


def queued(world: World, device: DeviceSession) -> list[dict[str, Any]]:
    envelopes: list[dict[str, Any]] = world.client.get(
        "/v1/messages", headers=device.headers
    ).json()["envelopes"]
    return envelopes


@pytest.fixture
def org(world: World) -> dict[str, DeviceSession]:
    return messaging_org(world)


# --- HTTP and WebSocket ---------------------------------------------------------------------


def test_identical_retry_gets_the_original_deliveries_and_queues_nothing(
    world: World, org: dict[str, DeviceSession]
) -> None:
    a1, b1, b2 = org["a1"], org["b1"], org["b2"]
    first = send(world, a1, "bob", [env(b1), env(b2)])
    assert first.status_code == 200
    retry = send(world, a1, "bob", [env(b1), env(b2)])
    assert retry.status_code == 200 and retry.json() == first.json()
    # the same envelope set in another order is the same send; answered in the retry's order
    reordered = send(world, a1, "bob", [env(b2), env(b1)])
    assert reordered.status_code == 200
    assert sorted(reordered.json()["deliveries"], key=lambda d: d["device_id"]) == sorted(
        first.json()["deliveries"], key=lambda d: d["device_id"]
    )
    assert [d["device_id"] for d in reordered.json()["deliveries"]] == ["b2", "b1"]
    ids = {d["device_id"]: d["delivery_id"] for d in first.json()["deliveries"]}
    assert [e["delivery_id"] for e in queued(world, b1)] == [ids["b1"]]
    assert [e["delivery_id"] for e in queued(world, b2)] == [ids["b2"]]


def test_a_changed_envelope_set_under_a_used_message_id_is_refused(
    world: World, org: dict[str, DeviceSession]
) -> None:
    a1, b1, b2 = org["a1"], org["b1"], org["b2"]
    assert send(world, a1, "bob", [env(b1), env(b2)]).status_code == 200
    r = send(world, a1, "bob", [env(b1, BODY + b"!"), env(b2)])  # another body
    assert r.status_code == 409, r.text
    assert r.json()["error"] == "message_id_reused"
    assert r.json()["field"] == "body.message_id"
    # a set the device check refuses anyway gets that check's answer (it names what to fix)
    r = send(world, a1, "bob", [env(b1), {**env(b2), "registration_id": b2.registration_id + 1}])
    assert r.status_code == 410 and r.json()["stale"] == ["b2"]
    r = send(world, a1, "bob", [env(b1)])
    assert r.status_code == 409 and r.json()["missing"] == ["b2"]
    assert len(queued(world, b1)) == 1
    # a new message id is a new message
    assert send(world, a1, "bob", [env(b1, BODY + b"!"), env(b2)], mid="m2").status_code == 200
    assert len(queued(world, b1)) == 2


def test_the_ledger_is_per_sender_device_and_recipient_user(
    world: World, org: dict[str, DeviceSession]
) -> None:
    """A client's sync copy (to its own other devices) carries the message id of the
    message it copies: same id, another recipient user, another send."""
    a1, a2, b1, b2 = org["a1"], org["a2"], org["b1"], org["b2"]
    first = send(world, a1, "bob", [env(b1), env(b2)])
    other = send(world, a2, "bob", [env(b1), env(b2)])  # alice's other device, same id
    assert first.status_code == other.status_code == 200
    assert first.json()["deliveries"] != other.json()["deliveries"]
    assert len(queued(world, b1)) == 2
    sync = send(world, a1, "alice", [env(a2)])  # the sync copy of a1's message m1
    assert sync.status_code == 200 and len(queued(world, a2)) == 1
    assert send(world, a1, "alice", [env(a2)]).json() == sync.json()  # its retry
    assert len(queued(world, a2)) == 1


def test_one_message_to_several_users_is_one_send_per_user_and_one_sync_copy(
    world: World, org: dict[str, DeviceSession]
) -> None:
    """Issue #11: a message to bob and carol is one request per recipient user plus ONE
    sync copy to the sender's own other devices, all under one message id. Each is
    retried as itself; a second, re-encrypted sync copy under that id (what a client sending
    the message once per user did) is a reuse, and so is a changed set to one of the users."""
    a1, a2, b1, b2, c1 = org["a1"], org["a2"], org["b1"], org["b2"], org["c1"]
    message = {"bob": [env(b1), env(b2)], "carol": [env(c1)], "alice": [env(a2)]}
    first = {user: send(world, a1, user, envs) for user, envs in message.items()}
    assert all(r.status_code == 200 for r in first.values()), {u: r.text for u, r in first.items()}
    for user, envs in message.items():
        retry = send(world, a1, user, envs)
        assert retry.status_code == 200 and retry.json() == first[user].json(), user
    for user, body in (("alice", BODY + b"sync-2"), ("carol", BODY + b"!")):
        target = {"alice": a2, "carol": c1}[user]
        r = send(world, a1, user, [env(target, body)])
        assert r.status_code == 409 and r.json()["error"] == "message_id_reused", user
    for device in (a2, b1, b2, c1):
        assert len(queued(world, device)) == 1, device.device_id


def test_a_retry_after_the_device_set_changed_gets_its_original_answer(
    world: World, org: dict[str, DeviceSession]
) -> None:
    """The envelopes of the accepted send are queued already: a 409/410 would only make the
    client re-encrypt and queue the message a second time (docs/server.md "Messages")."""
    a1, b1, b2 = org["a1"], org["b1"], org["b2"]
    first = send(world, a1, "bob", [env(b1), env(b2)])
    assert first.status_code == 200
    b3 = world.login("acme", "bob", "b3")  # bob adds a device after the send was accepted
    world.publish_keys(b3, opks=0)
    retry = send(world, a1, "bob", [env(b1), env(b2)])
    assert retry.status_code == 200 and retry.json() == first.json()
    assert queued(world, b3) == []
    # a fresh message still meets the device-set check
    r = send(world, a1, "bob", [env(b1), env(b2)], mid="m2")
    assert r.status_code == 409 and r.json()["missing"] == ["b3"]
    # ... and a changed set under the used id is still a reuse, whatever the devices are
    r = send(world, a1, "bob", [env(b1), env(b2), env(b3)])
    assert r.status_code == 409 and r.json()["error"] == "message_id_reused"


def test_websocket_retry_of_an_http_send_gets_the_same_deliveries(
    world: World, org: dict[str, DeviceSession]
) -> None:
    a1, b1, b2 = org["a1"], org["b1"], org["b2"]
    first = send(world, a1, "bob", [env(b1), env(b2)], mid="ws-1")
    with world.client.websocket_connect("/v1/websocket", headers=a1.headers) as ws:
        other = env(b1, b"DRV1x" + bytes(80))
        for request_id, envs in (("r1", [env(b1), env(b2)]), ("r2", [other, env(b2)])):
            ws.send_json({"type": "send", "request_id": request_id, "user_id": "bob",
                          "message": {"message_id": "ws-1", "envelopes": envs}})
            reply = ws.receive_json()
            assert reply["type"] == "response" and reply["request_id"] == request_id
            if request_id == "r1":
                assert reply["status"] == 200 and reply["body"] == first.json()
            else:
                assert reply["status"] == 409
                assert reply["body"]["error"] == "message_id_reused"
                assert reply["body"]["field"] == "body.message_id"
    assert len(queued(world, b1)) == 1


def test_broadcast_retry_is_answered_once_and_audited_once(
    world: World, org: dict[str, DeviceSession]
) -> None:
    a1, a2, b1, b2, c1 = org["a1"], org["a2"], org["b1"], org["b2"], org["c1"]
    recipients = [
        {"user_id": "bob", "envelopes": [env(b1), env(b2)]},
        {"user_id": "carol", "envelopes": [env(c1)]},
        {"user_id": "alice", "envelopes": [env(a2)]},
    ]
    body = {"message_id": "announce", "recipients": recipients}
    first = world.client.post("/v1/broadcasts", json=body, headers=a1.headers)
    assert first.status_code == 200
    retry = world.client.post("/v1/broadcasts", json=body, headers=a1.headers)
    assert retry.status_code == 200 and retry.json() == first.json()
    changed = {"message_id": "announce", "recipients": recipients[:2]}
    r = world.client.post("/v1/broadcasts", json=changed, headers=a1.headers)
    assert r.status_code == 409 and r.json()["field"] == "body.message_id"
    assert len(queued(world, c1)) == 1 and len(queued(world, b2)) == 1
    audit = world.client.get("/v1/orgs/acme/audit?event_type=broadcast", headers=a1.headers)
    assert len(audit.json()["events"]) == 1


def test_ledger_entries_expire_with_the_envelope_retention(
    world: World, org: dict[str, DeviceSession]
) -> None:
    a1, b1, b2 = org["a1"], org["b1"], org["b2"]
    policy = {"envelope_max_age": 600}  # well inside the 15-minute access token
    assert world.client.put(
        "/v1/orgs/acme/retention", json=policy, headers=a1.headers
    ).status_code == 200
    first = send(world, a1, "bob", [env(b1), env(b2)])
    world.clock.advance(300)
    report = asyncio.run(world.relay.enforce_retention())
    assert report.sends == 0  # still inside the window: a retry is still recognised
    assert send(world, a1, "bob", [env(b1), env(b2)]).json() == first.json()
    world.clock.advance(301)
    report = asyncio.run(world.relay.enforce_retention())
    assert report.sends == 1 and report.envelopes == 2
    queues = world.stores.queues
    assert asyncio.run(queues.get_send(("acme", "alice", "a1", "bob", "m1"))) is None
    # past the window the id is free again: the same request is a new send
    late = send(world, a1, "bob", [env(b1), env(b2)])
    assert late.status_code == 200 and late.json() != first.json()


def test_without_a_retention_policy_the_ledger_is_bounded_by_its_own_maximum(
    world: World, org: dict[str, DeviceSession]
) -> None:
    a1, b1, b2 = org["a1"], org["b1"], org["b2"]
    assert send(world, a1, "bob", [env(b1), env(b2)]).status_code == 200
    world.clock.advance(SEND_LEDGER_MAX_AGE - 1)
    assert asyncio.run(world.relay.enforce_retention()).sends == 0
    world.clock.advance(2)
    report = asyncio.run(world.relay.enforce_retention())
    assert report.sends == 1 and report.envelopes == 0  # envelopes are kept: no policy


def test_the_ledger_holds_ids_and_digests_never_bodies(
    world: World, org: dict[str, DeviceSession]
) -> None:
    a1, b1, b2 = org["a1"], org["b1"], org["b2"]
    canary = b"DRV1" + b"ledger-canary-" + bytes(range(60))
    assert send(world, a1, "bob", [env(b1, canary), env(b2, canary)]).status_code == 200
    for device in (b1, b2):
        ids = [e["delivery_id"] for e in queued(world, device)]
        world.client.post("/v1/messages/ack", json={"delivery_ids": ids}, headers=device.headers)
    dump = asyncio.run(world.stores.dump())
    assert not [where for where, data in dump if canary in data]
    key = ("acme", "alice", "a1", "bob", "m1")
    assert asyncio.run(world.stores.queues.get_send(key)) is not None


# --- the digest -----------------------------------------------------------------------------


class _Env:
    def __init__(self, device_id: str, registration_id: int, body: bytes) -> None:
        self.device_id, self.registration_id, self.body = device_id, registration_id, body


def test_the_digest_is_order_free_and_sees_every_field() -> None:
    base = [("bob", [_Env("b1", 1, b"x"), _Env("b2", 2, b"y")]), ("carol", [])]
    digest = send_digest("broadcast", base)
    assert send_digest("broadcast", list(reversed(base))) == digest
    assert send_digest("broadcast", [("bob", list(reversed(base[0][1]))), base[1]]) == digest
    changed = [
        [("bob", [_Env("b1", 1, b"x"), _Env("b2", 2, b"z")]), ("carol", [])],
        [("bob", [_Env("b1", 1, b"x"), _Env("b2", 3, b"y")]), ("carol", [])],
        [("bob", [_Env("b1", 1, b"x"), _Env("b3", 2, b"y")]), ("carol", [])],
        [("bob", [_Env("b1", 1, b"x"), _Env("b2", 2, b"y")])],  # carol dropped
        [("bob", [_Env("b1", 1, b"x"), _Env("b2", 2, b"y")]), ("carl", [])],
    ]
    for other in changed:
        assert send_digest("broadcast", other) != digest
    assert send_digest("send", base) != digest
    # field boundaries count: moving characters between ids changes the digest
    assert send_digest("send", [("ab", [_Env("c", 1, b"")])]) != send_digest(
        "send", [("a", [_Env("bc", 1, b"")])]
    )


def test_the_queue_path_digest_equals_the_request_digest() -> None:
    """The fresh path digests the queue entries (their body hashes), the retry path the
    request: both must name the same send."""
    envs = [_Env("b2", 7, b"DRV1two"), _Env("b1", 9, b"DRV1one")]
    entries = [
        QueuedEnvelope(f"d{i}", "acme", "m", "message", "alice", "a1", "bob", e.device_id,
                       e.body, hashlib.sha256(e.body).digest(), 1.0)
        for i, e in enumerate(envs)
    ]
    assert entries_digest("send", ("bob",), envs, entries) == send_digest("send", [("bob", envs)])


# --- concurrent identical requests, on every adapter ----------------------------------------

Opener = Callable[[], AbstractAsyncContextManager[Stores]]
REPLICAS = 2
PER_REPLICA = 4


def principal(user: str, device: str, role: str = "member") -> Principal:
    return Principal(user, "acme", device, role, "fam")  # type: ignore[arg-type]


async def seed(stores: Stores) -> None:
    acc = stores.accounts
    await acc.create_org_with_admin(
        Org("acme", "Acme", 0.0), User("alice", 0.0), TotpEnrolment("alice", b"\x00" * 20)
    )
    await acc.add_device(Device("alice", "a1", 1, 0.0))
    for user, devices in (("bob", ("b1", "b2")), ("carol", ("c1",))):
        await acc.create_user(User(user, 0.0))
        await acc.put_membership(Membership("acme", user, "member", 0.0))
        for i, device in enumerate(devices, 10):
            await acc.add_device(Device(user, device, i, 0.0))
            # a recipient device has published keys (docs/server.md "Recipient device set")
            keys = IdentityRecord(user, device, b"\x01" * 32, b"\x02" * 32)
            await stores.keys.put_identity(keys)
            await stores.keys.set_spk(user, device, SignedPrekeyRecord("s", b"\x03" * 32, b""))


def send_request() -> m.SendRequest:
    return m.SendRequest.model_validate({
        "message_id": "twin",
        "envelopes": [
            {"device_id": "b1", "registration_id": 10, "body": b64(BODY)},
            {"device_id": "b2", "registration_id": 11, "body": b64(BODY + b"2")},
        ],
    })


def broadcast_request() -> m.BroadcastRequest:
    return m.BroadcastRequest.model_validate({
        "message_id": "twin-broadcast",
        "recipients": [
            {"user_id": "bob", "envelopes": [
                {"device_id": "b1", "registration_id": 10, "body": b64(BODY)},
                {"device_id": "b2", "registration_id": 11, "body": b64(BODY)},
            ]},
            {"user_id": "carol", "envelopes": [
                {"device_id": "c1", "registration_id": 10, "body": b64(BODY)},
            ]},
        ],
    })


async def burst(relay: Relay, start: threading.Barrier | None) -> list[Any]:
    """PER_REPLICA identical sends and broadcasts at once on one relay."""
    sender = principal("alice", "a1", "admin")
    if start is not None:
        await asyncio.to_thread(start.wait)
    results: list[Any] = await asyncio.gather(
        *(relay.send(sender, "bob", send_request(), None) for _ in range(PER_REPLICA)),
        *(relay.broadcast(sender, broadcast_request(), None) for _ in range(PER_REPLICA)),
        return_exceptions=True,
    )
    return results


async def queue_counts(stores: Stores) -> dict[str, int]:
    return {d: await stores.queues.count(u, d) for u, d in
            (("bob", "b1"), ("bob", "b2"), ("carol", "c1"))}


def check(results: list[Any], counts: dict[str, int]) -> None:
    assert not [r for r in results if isinstance(r, BaseException)], results
    sends = [r for r in results if isinstance(r, m.SendResponse)]
    broadcasts = [r for r in results if isinstance(r, m.BroadcastResponse)]
    assert len(sends) == len(broadcasts) == REPLICAS * PER_REPLICA
    assert all(r == sends[0] for r in sends)  # every twin got the winner's delivery ids
    assert all(r == broadcasts[0] for r in broadcasts)
    assert counts == {"b1": 2, "b2": 2, "c1": 1}  # one send + one broadcast, each once


def run_replicas(open_stores: Opener) -> None:
    """REPLICAS relays, each in its own thread and event loop on its own store connection
    (what replicas are), released together by a barrier."""
    start = threading.Barrier(REPLICAS)
    results: list[list[Any]] = [[] for _ in range(REPLICAS)]

    def replica(i: int) -> None:
        async def body() -> None:
            async with open_stores() as stores:
                results[i] = await burst(Relay(Settings(), stores), start)

        asyncio.run(body())

    async def prepare() -> None:
        async with open_stores() as stores:
            await seed(stores)

    asyncio.run(prepare())
    threads = [threading.Thread(target=replica, args=(i,)) for i in range(REPLICAS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)

    async def counts() -> dict[str, int]:
        async with open_stores() as stores:
            return await queue_counts(stores)

    check([r for rs in results for r in rs], asyncio.run(counts()))


def test_concurrent_identical_requests_queue_once_memory() -> None:
    """One process, one loop: the twins interleave at every await of the relay."""

    async def body() -> None:
        stores = memory_stores()
        await seed(stores)
        relays = [Relay(Settings(), stores) for _ in range(REPLICAS)]
        results = await asyncio.gather(*(burst(r, None) for r in relays))
        check([r for rs in results for r in rs], await queue_counts(stores))

    asyncio.run(body())


def test_concurrent_identical_requests_queue_once_sqlite(tmp_path: Path) -> None:
    path = str(tmp_path / "relay.sqlite3")

    @asynccontextmanager
    async def open_stores() -> AsyncIterator[Stores]:
        stores = sqlite_stores(path)  # a connection of its own per replica
        try:
            yield stores
        finally:
            await stores.close()

    run_replicas(open_stores)


@pytest.mark.backend
def test_concurrent_identical_requests_queue_once_backends() -> None:
    provider = shared_provider(ProviderKind.LOCAL)
    namespace = f"idem{uuid.uuid4().hex[:12]}"

    @asynccontextmanager
    async def open_stores() -> AsyncIterator[Stores]:
        stores, handles = await backend_stores(provider.endpoints, namespace)
        try:
            yield stores
        finally:
            await handles.close()

    try:
        run_replicas(open_stores)
    finally:

        async def drop() -> None:
            _, handles = await backend_stores(provider.endpoints, namespace)
            await handles.drop()
            await handles.close()

        asyncio.run(drop())



def test_retry_and_reuse_log_lines_hash_the_identifiers(
    world: World, org: dict[str, DeviceSession], logs: LogCapture
) -> None:
    a1, b1, b2 = org["a1"], org["b1"], org["b2"]
    mid = "msg-logged-7f3a9c"
    assert send(world, a1, "bob", [env(b1), env(b2)], mid=mid).status_code == 200
    assert send(world, a1, "bob", [env(b1), env(b2)], mid=mid).status_code == 200
    other = env(b1, b"DRV1other" + bytes(80))
    assert send(world, a1, "bob", [other, env(b2)], mid=mid).status_code == 409
    events = {e["event"]: e for e in logs.events()}
    assert events["message_retry_answered"]["message_id_h8"] == h8(mid)
    assert events["message_id_reused"]["message_id_h8"] == h8(mid)
    assert events["message_id_reused"]["device_id_h8"] == h8("a1")
    assert not [line for line in logs.lines() if mid in line]
