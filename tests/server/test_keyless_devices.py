"""A device that logged in but never published keys does not make its user unreachable.

Regression (docs/server.md "Recipient device set", ``semafore.server.device_set``): the
send check counted every *registered* device while the key directory served only devices
with keys, so a sender told "bob:tablet is missing" could never fetch its bundle, retried,
and gave up with ``DeliveryFailed: device set kept changing``. A fresh install that crashed
between login and its first key upload did the same to its user for good.

Through a real relay on a loopback socket with the reference client (tests/client/helpers).
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from contextlib import contextmanager
from unittest import mock

import httpx
import pytest

from semafore.client import DeviceClient
from semafore.client.client import DeviceClient as _DeviceClient
from tests.client.helpers import World, world


class InstallCrashed(Exception):
    """The app died after logging in, before its first ``PUT /v1/keys``."""


@contextmanager
def crash_before_publishing_keys() -> Iterator[None]:
    async def crash(self: _DeviceClient) -> int:
        raise InstallCrashed(self.device_id)

    with mock.patch.object(_DeviceClient, "publish_keys", crash):
        yield


async def keyless_device(w: World, user_id: str, device_id: str) -> None:
    """Install a device that logs in (registered, registration id assigned) and crashes."""
    with crash_before_publishing_keys(), pytest.raises(InstallCrashed):
        await w.device(user_id, device_id)


def texts(client: DeviceClient) -> list[bytes]:
    return [r.content.body for r in client.inbox]


async def registered_devices(w: World, client: DeviceClient) -> list[str]:
    """``GET /v1/devices`` as the device's own session sees it (all registered devices)."""
    headers = {"Authorization": f"Bearer {client.http.access_token}"}
    async with httpx.AsyncClient(base_url=w.server.url, headers=headers) as http:
        r = await http.get("/v1/devices")
    assert r.status_code == 200, r.text
    return sorted(d["device_id"] for d in r.json()["devices"])


def test_a_keyless_device_does_not_stop_messages_to_its_users_keyed_devices() -> None:
    async def body() -> None:
        async with world(["alice", "bob"]) as w:
            alice = await w.device("alice", "phone")
            bob = await w.device("bob", "phone")
            await keyless_device(w, "bob", "tablet")
            assert await registered_devices(w, bob) == ["phone", "tablet"]  # it did log in
            result = await alice.send_text("bob", b"hello")
            assert sorted(result.envelopes) == ["bob:phone"]
            assert alice.counters.device_set_retries == 0  # the relay asked for nothing else
            await bob.poll()
            assert texts(bob) == [b"hello"]

    asyncio.run(body())


def test_the_device_joins_the_set_once_it_publishes_keys() -> None:
    async def body() -> None:
        async with world(["alice", "bob"]) as w:
            alice = await w.device("alice", "phone")
            bob = await w.device("bob", "phone")
            await keyless_device(w, "bob", "tablet")
            await alice.send_text("bob", b"before")
            tablet = await w.device("bob", "tablet")  # same device id, now with keys
            result = await alice.send_text("bob", b"after")
            assert sorted(result.envelopes) == ["bob:phone", "bob:tablet"]
            assert alice.counters.device_set_retries == 1  # the relay's 409 named the tablet
            await tablet.poll()
            assert texts(tablet) == [b"after"]
            await bob.poll()
            assert texts(bob) == [b"before", b"after"]

    asyncio.run(body())


def test_a_keyless_sibling_does_not_stop_sync_copies() -> None:
    async def body() -> None:
        async with world(["alice", "bob"]) as w:
            phone = await w.device("alice", "phone")
            laptop = await w.device("alice", "laptop")
            await keyless_device(w, "alice", "tablet")
            await w.device("bob", "phone")
            result = await phone.send_text("bob", b"hi")
            assert sorted(result.envelopes) == ["alice:laptop", "bob:phone"]
            assert result.sync == frozenset({"alice:laptop"})
            await laptop.poll()
            assert texts(laptop) == [b"hi"]

    asyncio.run(body())


def test_bundles_identities_and_the_send_check_name_the_same_devices() -> None:
    """One definition: what the key directory serves is exactly what a send must cover."""

    async def body() -> None:
        async with world(["alice", "bob"]) as w:
            alice = await w.device("alice", "phone")
            await w.device("bob", "phone")
            await w.device("bob", "laptop")
            await keyless_device(w, "bob", "tablet")
            headers = {"Authorization": f"Bearer {alice.http.access_token}"}
            async with httpx.AsyncClient(base_url=w.server.url, headers=headers) as http:
                bundles = (await http.get("/v1/keys/bob")).json()["devices"]
                identities = (await http.get("/v1/identities/bob")).json()["devices"]
                one = await http.get("/v1/keys/bob/tablet")
                served = {d["device_id"]: d["registration_id"] for d in bundles}
                assert sorted(served) == ["laptop", "phone"]
                assert {d["device_id"]: d["registration_id"] for d in identities} == served
                assert one.status_code == 404 and one.json()["error"] == "no_keys"
                envelope = base64.b64encode(b"DRV1" + bytes(100)).decode()  # DR_V1-shaped
                send = {
                    "message_id": "m-1",
                    "envelopes": [
                        {"device_id": d, "registration_id": r, "body": envelope}
                        for d, r in served.items()
                    ],
                }
                r = await http.put("/v1/messages/bob", json=send)
                assert r.status_code == 200, r.text
                with_tablet = {**send, "message_id": "m-2"}
                with_tablet["envelopes"] = [
                    *send["envelopes"],
                    {"device_id": "tablet", "registration_id": 1, "body": envelope},
                ]
                r = await http.put("/v1/messages/bob", json=with_tablet)
                assert r.status_code == 409, r.text
                assert r.json()["extra"] == ["tablet"]

    asyncio.run(body())
