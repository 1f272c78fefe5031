"""Conformance: ``KeyStore.published_devices`` is the key half of the relay's recipient
device set (docs/server.md "Recipient device set"): a device counts once it has stored an
identity **and** a signed prekey (SPEC §1: a bundle needs both), never before, and no longer
once its keys are deleted. Runs on every factory of ``tests/storage`` (see conftest.py)."""

from __future__ import annotations

import pytest

from semafore.storage.ports import IdentityRecord, OneTimePrekeyRecord, SignedPrekeyRecord, Stores

pytestmark = pytest.mark.anyio

SPK = SignedPrekeyRecord("spk-0", b"\x33" * 32, b"\x44" * 64)


def identity(user: str, device: str) -> IdentityRecord:
    return IdentityRecord(user, device, b"\x11" * 32, b"\x22" * 32)


async def test_a_device_is_published_once_it_has_identity_and_signed_prekey(
    stores: Stores,
) -> None:
    keys = stores.keys
    assert await keys.published_devices("bob") == set()
    await keys.add_opks("bob", "opks-only", [OneTimePrekeyRecord("opk-0", b"\x00" * 32)])
    await keys.put_identity(identity("bob", "identity-only"))
    await keys.set_spk("bob", "spk-only", SPK)  # a crash between the two writes of a publish
    assert await keys.published_devices("bob") == set()
    await keys.put_identity(identity("bob", "phone"))
    await keys.set_spk("bob", "phone", SPK)
    await keys.set_spk("bob", "identity-only", SPK)  # completes later: now published
    assert await keys.published_devices("bob") == {"phone", "identity-only"}


async def test_published_devices_are_per_user_and_end_with_the_keys(stores: Stores) -> None:
    keys = stores.keys
    for user, device in (("bob", "d1"), ("bob", "d2"), ("carol", "d1")):
        await keys.put_identity(identity(user, device))
        await keys.set_spk(user, device, SPK)
    assert await keys.published_devices("bob") == {"d1", "d2"}
    assert await keys.published_devices("carol") == {"d1"}
    await keys.delete_device_keys("bob", "d1")
    assert await keys.published_devices("bob") == {"d2"}
    assert await keys.published_devices("carol") == {"d1"}
    await keys.set_spk("bob", "d1", SPK)  # a re-registered device re-publishes from scratch:
    assert await keys.published_devices("bob") == {"d2"}  # an SPK alone is not enough
