"""A broadcast looks its recipients up concurrently and still answers like the one-by-one check.

Why: with the account cache cold a broadcast to 1,000 users was ~3,000 store reads in a row
(seconds on real backends, docs/capacity.md). Specification: the reads overlap (bounded by
``BROADCAST_LOOKUPS``), and the refusal a request gets is the first in recipient order, as
before: a repeated recipient, an unknown user or a malformed envelope set, whichever comes
first; nothing is written on any refusal.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from semafore.server.relay import BROADCAST_LOOKUPS
from semafore.storage.ports import Membership
from tests.server.helpers import DeviceSession, World, b64, messaging_org

BODY = b"DRV1" + bytes(range(68))


def env(session: DeviceSession, device_id: str | None = None) -> dict[str, Any]:
    return {
        "device_id": device_id or session.device_id,
        "registration_id": session.registration_id,
        "body": b64(BODY),
    }


@pytest.fixture
def org(world: World) -> dict[str, DeviceSession]:
    return messaging_org(world)


def broadcast(world: World, admin: DeviceSession, recipients: list[dict[str, Any]]) -> Any:
    body = {"message_id": "b-1", "recipients": recipients}
    return world.client.post("/v1/broadcasts", json=body, headers=admin.headers)


def test_recipients_are_looked_up_concurrently_within_the_bound(
    world: World, org: dict[str, DeviceSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    accounts = world.stores.accounts
    real = accounts.get_membership
    in_flight = 0
    most = 0

    async def slow_membership(org_id: str, user_id: str) -> Membership | None:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        try:
            for _ in range(5):  # a store round trip: other lookups may run meanwhile
                await asyncio.sleep(0)
            return await real(org_id, user_id)
        finally:
            in_flight -= 1

    monkeypatch.setattr(accounts, "get_membership", slow_membership)
    a2, b1, b2, c1 = org["a2"], org["b1"], org["b2"], org["c1"]
    recipients = [
        {"user_id": "bob", "envelopes": [env(b1), env(b2)]},
        {"user_id": "carol", "envelopes": [env(c1)]},
        {"user_id": "alice", "envelopes": [env(a2)]},
    ]
    r = broadcast(world, org["a1"], recipients)
    assert r.status_code == 200, r.text
    assert r.json()["deliveries"] == 4
    assert 2 <= most <= BROADCAST_LOOKUPS


def test_the_first_refusal_in_recipient_order_is_the_answer(
    world: World, org: dict[str, DeviceSession]
) -> None:
    a1, a2, b1, b2, c1 = org["a1"], org["a2"], org["b1"], org["b2"], org["c1"]
    bob = {"user_id": "bob", "envelopes": [env(b1), env(b2)]}
    ghost = {"user_id": "ghost", "envelopes": [env(c1)]}
    twice = {"user_id": "carol", "envelopes": [env(c1), env(c1)]}  # duplicate_device
    cases: list[tuple[list[dict[str, Any]], int, str, str]] = [
        ([ghost, bob, bob], 404, "unknown_user", "body.recipients.0.user_id"),
        ([bob, bob, ghost], 422, "duplicate_recipient", "body.recipients.1.user_id"),
        ([bob, twice, ghost], 422, "duplicate_device", "body.recipients.1.envelopes"),
        ([bob, ghost, twice], 404, "unknown_user", "body.recipients.1.user_id"),
    ]
    for recipients, status, error, field in cases:
        r = broadcast(world, a1, recipients)
        assert (r.status_code, r.json()["error"]) == (status, error), (recipients, r.text)
        assert r.json()["field"].startswith(field), r.json()
    # a set problem (409) is answered only once every recipient is known and well formed
    wrong = {"user_id": "carol", "envelopes": [env(b1)]}
    r = broadcast(world, a1, [wrong, ghost])
    assert (r.status_code, r.json()["error"]) == (404, "unknown_user")
    r = broadcast(world, a1, [wrong, {"user_id": "alice", "envelopes": [env(a2)]}])
    assert r.status_code == 409
    assert r.json()["mismatched"] == [{"user_id": "carol", "missing": ["c1"], "extra": ["b1"]}]
    for device in (b1, b2, c1, a2):  # nothing written by any refusal
        assert world.client.get("/v1/messages", headers=device.headers).json()["envelopes"] == []
