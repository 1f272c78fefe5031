"""One message to several users is ONE message (issue #11): the client encrypts it for every
device of every recipient user and sends exactly one sync copy, naming every peer of the
conversation, to the sender's own other devices (seed §4.2). The relay keys its send ledger
by (org, sender device, recipient user, message id) (issue #3), so a second sync copy under
the same message id would be refused with 409 ``message_id_reused``."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from semafore.client import DeliveryFailed, DeviceClient, ServerRejected
from semafore.client.errors import RecipientsFailed
from tests.client.helpers import world


def bodies(client: DeviceClient) -> list[tuple[str, bytes]]:
    return [(r.content.message_id, r.content.body) for r in client.inbox]


def test_one_text_to_two_users_from_a_two_device_account() -> None:
    async def body() -> None:
        async with world(["alice", "bob", "carol"]) as w:
            phone = await w.device("alice", "phone")
            laptop = await w.device("alice", "laptop")
            bob_phone = await w.device("bob", "phone")
            bob_tablet = await w.device("bob", "tablet")
            carol = await w.device("carol", "phone")
            result = await phone.send_text(["bob", "carol"], b"to both")
            assert sorted(result.envelopes) == [
                "alice:laptop", "bob:phone", "bob:tablet", "carol:phone",
            ]
            assert result.sync == frozenset({"alice:laptop"})
            for device in (bob_phone, bob_tablet, carol, laptop):
                await device.poll()
                assert bodies(device) == [(result.message_id, b"to both")], device.address
            assert [r.content.sync_to for r in bob_phone.inbox + carol.inbox] == [None, None]
            assert laptop.inbox[0].content.sync_to == "bob,carol"
            assert laptop.inbox[0].content.sync_peers == ("bob", "carol")
            assert phone.counters.sent_messages == 1

    asyncio.run(body())


def test_every_device_decrypts_the_message_exactly_once() -> None:
    """Polling again finds nothing: each device's queue held one envelope of the message."""
    async def body() -> None:
        async with world(["alice", "bob", "carol"]) as w:
            phone = await w.device("alice", "phone")
            others = [
                await w.device("alice", "laptop"),
                await w.device("bob", "phone"),
                await w.device("bob", "tablet"),
                await w.device("carol", "phone"),
            ]
            first = await phone.send_text(["carol", "bob"], b"one")
            second = await phone.send_text(["bob", "carol"], b"two")
            for device in others:
                got = await device.poll()
                assert [(r.content.message_id, r.content.body) for r in got] == [
                    (first.message_id, b"one"), (second.message_id, b"two"),
                ], device.address
                assert await device.poll() == []
                assert device.counters.duplicates == device.counters.undecryptable == 0
            # the listing order of the users is no part of the message
            assert {r.content.sync_to for r in others[0].inbox} == {"bob,carol"}
            assert phone.counters.sent_messages == 2

    asyncio.run(body())


def test_one_attachment_to_two_users_is_one_message_with_one_sync_copy() -> None:
    async def body() -> None:
        async with world(["alice", "bob", "carol"]) as w:
            phone = await w.device("alice", "phone")
            laptop = await w.device("alice", "laptop")
            bob_phone = await w.device("bob", "phone")
            bob_tablet = await w.device("bob", "tablet")
            carol = await w.device("carol", "phone")
            secret = b"SLIDES-" * 300
            result, pointer = await phone.send_attachment(["bob", "carol"], secret, b"deck")
            assert sorted(result.envelopes) == [
                "alice:laptop", "bob:phone", "bob:tablet", "carol:phone",
            ]
            assert result.sync == frozenset({"alice:laptop"})
            for device in (bob_phone, bob_tablet, carol, laptop):
                got = await device.poll()
                assert [(r.content.message_id, r.content.attachment) for r in got] == [
                    (result.message_id, pointer),
                ], device.address
                assert got[0].content.body == b"deck"
                assert await device.fetch_attachment(pointer) == secret
            assert laptop.inbox[0].content.sync_peers == ("bob", "carol")
            assert [r.content.sync_to for r in (bob_phone.inbox + carol.inbox)] == [None, None]

    asyncio.run(body())


def test_a_retry_of_every_request_of_the_message_gets_the_same_deliveries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The message is one request per recipient user plus one sync request; replaying each
    (a lost answer, the transport's retry) is answered with the original delivery ids and
    queues nothing, while another envelope set under the message id is still refused."""
    async def body() -> None:
        async with world(["alice", "bob", "carol"]) as w:
            phone = await w.device("alice", "phone")
            laptop = await w.device("alice", "laptop")
            devices = [laptop, await w.device("bob", "phone"), await w.device("bob", "tablet"),
                       await w.device("carol", "phone")]
            sent: list[tuple[str, dict[str, Any], Any]] = []
            original = phone.http.json

            async def recording(method: str, path: str, **kwargs: Any) -> Any:
                answer = await original(method, path, **kwargs)
                if method == "PUT" and path.startswith("/v1/messages/"):
                    sent.append((path, kwargs["json"], answer))
                return answer

            monkeypatch.setattr(phone.http, "json", recording)
            result = await phone.send_text(["bob", "carol"], b"once")
            assert [path for path, _, _ in sent] == [
                "/v1/messages/bob", "/v1/messages/carol", "/v1/messages/alice",
            ]
            assert {req["message_id"] for _, req, _ in sent} == {result.message_id}
            for path, request, answer in list(sent):
                assert await original("PUT", path, json=request) == answer
            path, request, _ = sent[1]
            changed = {**request, "envelopes": [
                {**request["envelopes"][0], "body": request["envelopes"][0]["body"][:-4] + "AAA="}
            ]}
            with pytest.raises(ServerRejected) as refused:
                await original("PUT", path, json=changed)
            assert refused.value.status == 409 and refused.value.code == "message_id_reused"
            for device in devices:
                assert [r.content.body for r in await device.poll()] == [b"once"]

    asyncio.run(body())


def test_the_senders_own_user_among_the_recipients_gets_the_one_sync_copy() -> None:
    async def body() -> None:
        async with world(["alice", "bob"]) as w:
            phone = await w.device("alice", "phone")
            laptop = await w.device("alice", "laptop")
            bob = await w.device("bob", "phone")
            both = await phone.send_text(["alice", "bob", "bob"], b"to us")
            assert sorted(both.envelopes) == ["alice:laptop", "bob:phone"]
            alone = await phone.send_text("alice", b"note to self")
            assert sorted(alone.envelopes) == ["alice:laptop"] and alone.sync == frozenset()
            got = await laptop.poll()
            assert [(r.content.body, r.content.sync_to) for r in got] == [
                (b"to us", "bob"), (b"note to self", None),
            ]
            assert [r.content.body for r in await bob.poll()] == [b"to us"]

    asyncio.run(body())


def test_a_user_that_cannot_be_reached_does_not_stop_the_others() -> None:
    """dave has no device: bob and the sync copy still get the message, and the failure
    names dave; to dave alone the failure is raised as it is."""
    async def body() -> None:
        async with world(["alice", "bob", "dave"]) as w:
            phone = await w.device("alice", "phone")
            laptop = await w.device("alice", "laptop")
            bob = await w.device("bob", "phone")
            with pytest.raises(RecipientsFailed) as failed:
                await phone.send_text(["dave", "bob"], b"partial")
            assert failed.value.field == "user_id"
            assert list(failed.value.failures) == ["dave"]
            assert isinstance(failed.value.failures["dave"], DeliveryFailed)
            assert sorted(failed.value.result.envelopes) == ["alice:laptop", "bob:phone"]
            assert [r.content.body for r in await bob.poll()] == [b"partial"]
            assert [r.content.sync_to for r in await laptop.poll()] == ["bob,dave"]
            with pytest.raises(DeliveryFailed) as alone:
                await phone.send_text("dave", b"nobody")
            assert not isinstance(alone.value, RecipientsFailed)
            with pytest.raises(DeliveryFailed) as nobody:
                await phone.send_text([], b"nobody")
            assert nobody.value.field == "user_id"
            assert await laptop.poll() == []

    asyncio.run(body())


def test_a_withheld_message_to_two_users_encrypts_everything_and_sends_nothing() -> None:
    async def body() -> None:
        async with world(["alice", "bob", "carol"]) as w:
            phone = await w.device("alice", "phone")
            devices = [await w.device("alice", "laptop"), await w.device("bob", "phone"),
                       await w.device("carol", "phone")]
            lost = await phone.send_text(["bob", "carol"], b"lost", withhold=True)
            assert sorted(lost.envelopes) == ["alice:laptop", "bob:phone", "carol:phone"]
            assert lost.sync == frozenset({"alice:laptop"})
            for device in devices:
                assert await device.poll() == []
            # the next message (new id) reaches everyone: the relay never saw the lost one
            await phone.send_text(["bob", "carol"], b"next")
            for device in devices:
                assert [r.content.body for r in await device.poll()] == [b"next"]

    asyncio.run(body())
